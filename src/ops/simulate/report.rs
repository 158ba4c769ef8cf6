//! The printed report: what was simulated, one row per policy, the lower
//! bound's row and where it came from. Plain text, deterministic (the same
//! inputs and seed print the same bytes).

use super::bound;
use super::fleet::{Fleet, Pay};
use super::outcome::{per_1000, Outcome, Waits};
use super::policies::AgentParams;
use super::workload::Workload;
use super::{show, Ms, HOUR};
use crate::decide::leave::Billing;

/// The report's lower bound (`bound::least` over the candidates).
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    /// The schedule it is the bound of ("zero-wait" or a row's label).
    pub from: String,
    pub ms: Ms,
    pub cost: f64,
    /// That schedule's jobs done and waits.
    pub done: usize,
    pub waits: Waits,
    /// The zero-wait schedule's bound, for the note.
    pub zero_wait: Ms,
}

/// The least clairvoyant bound over the zero-wait schedule and every
/// simulated row's own schedule: below every row's cost.
pub fn lower_bound<'a>(
    w: &Workload,
    f: &Fleet,
    rows: impl IntoIterator<Item = (&'a str, &'a Outcome)>,
) -> Bound {
    let h = f.horizon;
    let runs = w.jobs.iter().map(|j| (j.enqueue, j.enqueue + j.run));
    let zero_wait = bound::instance_ms(runs, f.concurrency, f.boot, h);
    let zero_done = w.jobs.iter().filter(|j| j.enqueue + j.run < h).count();
    let rows: Vec<(&str, &Outcome)> = rows.into_iter().collect();
    let candidates = std::iter::once(("zero-wait", zero_wait))
        .chain(rows.iter().map(|(l, o)| (*l, o.own_bound)));
    let (from, ms) = bound::least(candidates).unwrap_or(("zero-wait", zero_wait));
    let (done, waits) = match rows.iter().find(|(l, o)| *l == from && o.own_bound == ms) {
        Some((_, o)) => (o.done, o.waits),
        None => (
            zero_done,
            Waits {
                started: w.jobs.iter().filter(|j| j.enqueue < h).count(),
                ..Waits::default()
            },
        ),
    };
    Bound {
        from: from.to_string(),
        ms,
        cost: f.dollars(ms),
        done,
        waits,
        zero_wait,
    }
}

/// `12345` → `12,345`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (k, c) in s.chars().enumerate() {
        if k > 0 && (s.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn hours(t: Ms) -> f64 {
    t as f64 / HOUR as f64
}

fn billing(b: Billing) -> &'static str {
    match b {
        Billing::PerSecond => "per-second",
        Billing::Hourly => "hourly",
        Billing::Never => "never",
    }
}

/// What was simulated, in three lines.
pub fn header(w: &Workload, f: &Fleet, a: &AgentParams, seed: u64) -> String {
    let r = &a.rules;
    format!(
        "workload: {} — {} jobs, the last enqueued at {}, {:.1} hours of job run time\n\
         fleet: MinSize {}, MaxSize {}, {} jobs per instance, boot {}, warm-up {}, target {} visible per InService instance (out after {}, ASG scale-in after {} one-minute datapoints), ${}/h billed {}{}, horizon {}, seed {seed}\n\
         drainerd [fleet]: billing {}, idle_timeout {}, min_lifetime {}, backlog_per_instance {}, hourly_window {}, check_interval {}, protect_while_busy {}, protection_linger {}\n",
        w.source,
        thousands(w.jobs.len() as u64),
        show(w.span()),
        hours(w.work()),
        f.min,
        f.max,
        f.concurrency,
        show(f.boot),
        show(f.warmup),
        f.target,
        f.out_after,
        f.in_after,
        f.price_per_hour,
        match f.pay {
            Pay::PerSecond => "per second (60 s minimum)",
            Pay::Hourly => "by the hour",
        },
        if f.spot_per_hour > 0.0 {
            format!(", spot interruptions {}/instance-hour", f.spot_per_hour)
        } else {
            String::new()
        },
        show(f.horizon),
        billing(r.billing),
        show(super::ms(r.idle_timeout)),
        show(super::ms(r.min_lifetime)),
        r.backlog_per_instance,
        show(super::ms(r.hourly_window)),
        show(super::ms(a.check_interval)),
        a.protect_while_busy,
        show(super::ms(a.protection_linger)),
    )
}

/// One table row's numbers.
struct Row<'a> {
    label: &'a str,
    paid: Ms,
    cost: f64,
    done: usize,
    killed: Option<u64>,
    spot: Option<u64>,
    waits: Waits,
}

fn line(r: &Row, bound: f64, spot: bool) -> String {
    let dash = |v: Option<u64>| v.map_or("-".into(), thousands);
    let ratio = if bound > 0.0 { r.cost / bound } else { 1.0 };
    let mut s = format!(
        "{:<22}{:>9.1}{:>10.2}{:>11.3}{:>8}",
        r.label,
        hours(r.paid),
        r.cost,
        per_1000(r.cost, r.done),
        dash(r.killed),
    );
    if spot {
        s.push_str(&format!("{:>8}", dash(r.spot)));
    }
    s.push_str(&format!(
        "{:>10}{:>10}{:>10}{:>9.2}\n",
        show(r.waits.p50),
        show(r.waits.p95),
        show(r.waits.max),
        ratio
    ));
    s
}

/// The table: one row per `(label, outcome)`, then the bound's row and
/// notes (the bound's schedule; jobs not done by the horizon).
pub fn table<'a>(
    rows: impl IntoIterator<Item = (&'a str, &'a Outcome)>,
    b: &Bound,
    f: &Fleet,
) -> String {
    let spot = f.spot_per_hour > 0.0;
    let mut s = format!(
        "{:<22}{:>9}{:>10}{:>11}{:>8}",
        "policy", "inst-h", "cost $", "$/1k jobs", "killed"
    );
    if spot {
        s.push_str(&format!("{:>8}", "spot"));
    }
    s.push_str(&format!(
        "{:>10}{:>10}{:>10}{:>9}\n",
        "wait p50", "wait p95", "wait max", "× bound"
    ));
    let mut notes = String::new();
    for (label, o) in rows {
        s.push_str(&line(
            &Row {
                label,
                paid: o.paid,
                cost: o.cost,
                done: o.done,
                killed: Some(o.killed),
                spot: Some(o.interrupted),
                waits: o.waits,
            },
            b.cost,
            spot,
        ));
        if o.done < o.jobs {
            notes.push_str(&format!(
                "note: {label} finished {} of {} jobs by the horizon\n",
                thousands(o.done as u64),
                thousands(o.jobs as u64)
            ));
        }
    }
    s.push_str(&line(
        &Row {
            label: "lower bound",
            paid: b.ms,
            cost: b.cost,
            done: b.done,
            killed: None,
            spot: None,
            waits: b.waits,
        },
        b.cost,
        spot,
    ));
    s.push_str(&format!(
        "lower bound: a clairvoyant fleet running the {} schedule; on the zero-wait schedule it pays {:.1} instance-hours (${:.2})\n",
        b.from,
        hours(b.zero_wait),
        f.dollars(b.zero_wait),
    ));
    s.push_str(&notes);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
