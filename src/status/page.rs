//! `/`: the status page, rendered on the server. No scripts, no external
//! assets; it reloads itself every few seconds and fits a phone screen.

use std::fmt::Write;

use super::Snapshot;

mod chart;

/// Seconds between the page's own reloads.
pub const RELOAD_SECS: u32 = 5;

/// Escapes text for HTML element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "—".into(), |v| esc(&v.to_string()))
}

const STYLE: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;max-width:60em;padding:.5em 1em;color:#222;background:#fafafa}\
h1{font-size:1.3em;margin:.3em 0}h2{font-size:1.05em;margin:1.2em 0 .3em;border-bottom:1px solid #ddd}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(9em,1fr));gap:.5em}\
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.4em .6em}\
.card b{display:block;font-size:1.4em}.card span{color:#666;font-size:.85em}\
table{border-collapse:collapse;width:100%;font-size:.9em}td,th{text-align:left;padding:.2em .4em;border-bottom:1px solid #eee}\
.scroll{overflow-x:auto}.ok{color:#1a7f37}.bad{color:#b3261e}.warn{color:#9a6700}\
form{display:inline-block;margin:.3em .5em .3em 0}input,button{font:inherit;padding:.3em .6em}\
.muted{color:#666;font-size:.85em}code{font-size:.85em;word-break:break-all}\
.chart{display:block;width:100%;max-width:40em;height:auto;background:#fff;border:1px solid #ddd;border-radius:6px}";

fn card(o: &mut String, id: &str, value: &str, label: &str) {
    let _ = write!(
        o,
        "<div class=card><b id={id}>{value}</b><span>{}</span></div>",
        esc(label)
    );
}

/// Renders the page.
pub fn render(s: &Snapshot) -> String {
    let mut o = String::with_capacity(16 * 1024);
    let state_class = match s.agent.state {
        "running" => "ok",
        "draining" => "warn",
        _ => "muted",
    };
    let _ = write!(
        o,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
<meta name=viewport content=\"width=device-width,initial-scale=1\">\
<meta http-equiv=refresh content={RELOAD_SECS}>\
<title>drainerd · {}</title><style>{STYLE}</style></head><body>\
<h1>drainerd <span class={state_class} id=state>{}</span></h1>\
<p class=muted>{} · queue <code id=queue-url>{}</code> · v{} · {}</p>",
        opt(s.instance.instance_id.as_deref()),
        esc(s.agent.state),
        opt(s.instance.instance_id.as_deref()),
        esc(&s.queue.url),
        esc(s.version),
        esc(&s.generated_at),
    );
    if let Some(why) = &s.agent.cannot_start {
        let _ = write!(
            o,
            "<p class=bad id=cannot-start>✖ jobs cannot start: {} — not taking work; messages go back without spending their receives; probing until the command can start</p>",
            esc(why)
        );
    }
    if let Some(n) = &s.agent.notice {
        let _ = write!(o, "<p class=warn id=notice>⚠ {}</p>", esc(n));
    }

    o.push_str("<h2>This box</h2><div class=grid>");
    card(
        &mut o,
        "running",
        &format!("{}/{}", s.agent.running, s.agent.slots),
        "jobs running / slots",
    );
    card(&mut o, "succeeded", &s.jobs.succeeded.to_string(), "done");
    card(
        &mut o,
        "failed",
        &(s.jobs.failed + s.jobs.timed_out + s.jobs.rejected).to_string(),
        "failed (incl. timed out, rejected)",
    );
    card(
        &mut o,
        "handed-back",
        &s.jobs.handed_back.to_string(),
        "handed back (interrupted)",
    );
    card(
        &mut o,
        "not-started",
        &s.jobs.not_started.to_string(),
        "could not start",
    );
    card(
        &mut o,
        "idle",
        &opt(s.agent.idle_seconds.map(|i| format!("{i}s"))),
        "idle for",
    );
    o.push_str("</div>");

    o.push_str("<h2>Queue</h2><div class=grid>");
    card(&mut o, "queue-visible", &opt(s.queue.visible), "visible");
    card(
        &mut o,
        "queue-in-flight",
        &opt(s.queue.in_flight),
        "in flight",
    );
    card(&mut o, "queue-delayed", &opt(s.queue.delayed), "delayed");
    card(
        &mut o,
        "dlq-visible",
        &opt(s.queue.dlq_visible),
        "dead-letter queue",
    );
    let _ = write!(
        o,
        "</div><p class=muted>as of {}{}{}</p>",
        opt(s.queue.as_of.as_deref()),
        s.queue
            .age_seconds
            .map(|a| format!(
                " ({a}s ago; read at most once per status.refresh_interval, while someone looks)"
            ))
            .unwrap_or_default(),
        if s.queue.errors.is_empty() {
            String::new()
        } else {
            format!(
                " · <span class=bad>{}</span>",
                esc(&s.queue.errors.join("; "))
            )
        }
    );

    o.push_str("<h2>Last hour</h2>");
    let queue = s.queue.url.rsplit('/').next().unwrap_or_default();
    chart::render(&mut o, &s.last_hour, queue);
    o.push_str("<p class=muted>Jobs that ended per minute (bars) and the queue's visible messages (line); \
the queue is read only while someone views this page, so its line has gaps. Per minute in /status.json (last_hour).</p>");

    o.push_str("<h2>Recent jobs</h2><div class=scroll><table><tr><th>message</th><th>finished (UTC)</th><th>took</th><th>outcome</th><th>exit</th><th>try</th></tr>");
    if s.jobs.recent.is_empty() {
        o.push_str("<tr><td colspan=6 class=muted>none yet</td></tr>");
    }
    for j in &s.jobs.recent {
        let class = if j.outcome == "succeeded" {
            "ok"
        } else {
            "bad"
        };
        let _ = write!(
            o,
            "<tr><td><code>{}</code></td><td>{}</td><td>{:.2}s</td><td class={class}>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&j.message_id),
            // The time of day (UTC) is enough here; status.json has the date.
            esc(j.finished_at.get(11..19).unwrap_or(&j.finished_at)),
            j.duration_seconds,
            esc(j.outcome),
            esc(&j.exit),
            j.receive_count
        );
    }
    o.push_str("</table></div>");

    let i = &s.instance;
    let _ = write!(
        o,
        "<h2>Instance</h2><table>\
<tr><th>id</th><td id=instance-id>{}</td></tr><tr><th>type</th><td>{}</td></tr>\
<tr><th>zone</th><td>{}</td></tr><tr><th>launched</th><td>{}</td></tr>\
<tr><th>billing</th><td>{}</td></tr><tr><th>next hour boundary</th><td>{} ({})</td></tr>\
<tr><th>scale-in protection</th><td id=protected>{}</td></tr><tr><th>lifecycle state</th><td>{}</td></tr>\
</table>",
        opt(i.instance_id.as_deref()),
        opt(i.instance_type.as_deref()),
        opt(i.availability_zone.as_deref()),
        opt(i.launch_time.as_deref()),
        opt(i.billing),
        opt(i.next_billing_boundary.as_deref()),
        opt(i.seconds_to_billing_boundary.map(|x| format!("in {x}s"))),
        opt(i.protected.map(|p| if p { "on" } else { "off" })),
        opt(i.lifecycle_state.as_deref()),
    );

    let f = &s.fleet;
    let _ = write!(
        o,
        "<h2>Fleet</h2><p>group <b>{}</b> · desired <b id=desired>{}</b> (min {}, max {}) · in service {} · leaving {}</p>\
<p id=verdict>fleet logic: <b>{}</b> {}</p>",
        opt(f.group.as_deref()),
        opt(f.desired),
        opt(f.min),
        opt(f.max),
        opt(f.in_service),
        opt(f.leaving),
        match (f.verdict, &f.group) {
            (Some(v), _) => esc(v),
            (None, Some(_)) => "deciding".into(),
            (None, None) => "off (not in a known Auto Scaling group)".into(),
        },
        f.reason.as_deref().map(|r| format!("— {}", esc(r))).unwrap_or_default(),
    );
    if !f.members.is_empty() {
        o.push_str("<div class=scroll><table><tr><th>instance</th><th>state</th><th>health</th><th>protected</th></tr>");
        for m in &f.members {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&m.instance_id),
                esc(&m.lifecycle_state),
                esc(&m.health),
                if m.protected { "yes" } else { "no" }
            );
        }
        o.push_str("</table></div>");
    }

    o.push_str("<h2>Controls</h2>");
    if s.controls_enabled {
        o.push_str(
            "<p class=muted>Spawn raises the group's desired capacity by one (never above max). \
Leave stops taking work, lets running jobs finish, and removes this instance from the group (desired −1).</p>\
<form method=post action=/spawn><input type=password name=token placeholder=\"control token\" required autocomplete=off> <button>Spawn one</button></form>\
<form method=post action=/leave><input type=password name=token placeholder=\"control token\" required autocomplete=off> <button>Leave the group</button></form>",
        );
    } else {
        o.push_str("<p class=muted>Buttons disabled: set <code>status.control_token</code> to enable spawn and leave.</p>");
    }
    o.push_str("<p class=muted><a href=/status.json>status.json</a> · <a href=/metrics>metrics</a></p></body></html>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::outcome::JobOutcome;
    use crate::status::counters::{Counters, RecentJob};
    use crate::status::snapshot::snapshot_now;
    use std::time::Duration;

    #[test]
    fn text_from_jobs_and_queues_is_escaped() {
        let stats = Counters::default();
        stats.job_finished(
            JobOutcome::Failed,
            RecentJob {
                message_id: "<script>alert(1)</script>".into(),
                finished_at: "2026-11-22T10:00:00Z".into(),
                duration_seconds: 1.0,
                outcome: JobOutcome::Failed.name(),
                exit: "exit 3 \"&'".into(),
                receive_count: 2,
            },
            Duration::from_secs(1),
        );
        let s = snapshot_now(&stats, "https://q/<b>", true);
        let html = render(&s);
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("exit 3 &quot;&amp;&#39;"));
        assert!(html.contains("https://q/&lt;b&gt;"));
        assert!(html.contains("<td>10:00:00</td>"));
        assert!(html.contains("action=/leave"));
        assert!(html.contains("<svg class=\"chart\""));
        assert!(
            html.contains("messages in &lt;b&gt;"),
            "the chart's queue name"
        );
    }
}
