//! `--sweep FIELD=RANGE`: the drainerd policy run once per value of one
//! setting, everything else as configured, and the cheapest value.
//!
//! FIELD is a `[fleet]` key (`idle_timeout`, `min_lifetime`,
//! `hourly_window`, `check_interval`, `protection_linger`,
//! `backlog_per_instance`, `billing`) or a fleet knob (`min_size`,
//! `max_size`, `target_backlog`, `boot`, `warmup`). RANGE is `A..B` (ten
//! evenly spaced values, ends included), `A..B/STEP`, or a list `A,B,C`.

use std::time::Duration;

use super::fleet::Fleet;
use super::outcome::Outcome;
use super::policies::{AgentParams, Policy};
use super::workload::Workload;
use super::{engine, show, Ms, SimError};
use crate::decide::leave::Billing;

/// Most values one sweep may have.
pub const MAX_POINTS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dur,
    Num,
    Int,
    Billing,
}

const FIELDS: &[(&str, Kind)] = &[
    ("idle_timeout", Kind::Dur),
    ("min_lifetime", Kind::Dur),
    ("hourly_window", Kind::Dur),
    ("check_interval", Kind::Dur),
    ("protection_linger", Kind::Dur),
    ("backlog_per_instance", Kind::Num),
    ("billing", Kind::Billing),
    ("min_size", Kind::Int),
    ("max_size", Kind::Int),
    ("target_backlog", Kind::Num),
    ("boot", Kind::Dur),
    ("warmup", Kind::Dur),
];

/// One value of a swept field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Dur(Duration),
    Num(f64),
    Int(u32),
    Billing(Billing),
}

impl Value {
    pub fn show(&self) -> String {
        match self {
            Value::Dur(d) => show(super::ms(*d)),
            Value::Num(v) => format!("{v}"),
            Value::Int(v) => v.to_string(),
            Value::Billing(Billing::PerSecond) => "per-second".into(),
            Value::Billing(Billing::Hourly) => "hourly".into(),
            Value::Billing(Billing::Never) => "never".into(),
        }
    }

    /// A number for the chart's x axis (seconds for durations).
    pub fn x(&self) -> f64 {
        match self {
            Value::Dur(d) => d.as_secs_f64(),
            Value::Num(v) => *v,
            Value::Int(v) => f64::from(*v),
            Value::Billing(b) => *b as u8 as f64,
        }
    }
}

/// A parsed `--sweep`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub field: &'static str,
    pub values: Vec<Value>,
}

fn one(kind: Kind, s: &str) -> Option<Value> {
    let s = s.trim();
    match kind {
        Kind::Dur => humantime::parse_duration(s)
            .ok()
            .or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .and_then(|v| Duration::try_from_secs_f64(v).ok())
            })
            .map(Value::Dur),
        Kind::Num => s
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Value::Num),
        Kind::Int => s.parse().ok().map(Value::Int),
        Kind::Billing => match s {
            "per-second" => Some(Value::Billing(Billing::PerSecond)),
            "hourly" => Some(Value::Billing(Billing::Hourly)),
            "never" => Some(Value::Billing(Billing::Never)),
            _ => None,
        },
    }
}

fn from_x(kind: Kind, x: f64) -> Value {
    match kind {
        Kind::Dur => Value::Dur(Duration::from_secs(x.round().max(0.0) as u64)),
        Kind::Int => Value::Int(x.round().max(0.0) as u32),
        _ => Value::Num((x * 1e6).round() / 1e6),
    }
}

/// Parses `FIELD=RANGE`.
///
/// # Errors
/// An unknown field, a value of the wrong kind, an empty or oversized range.
pub fn parse(spec: &str) -> Result<Sweep, SimError> {
    let err = |problem: String| SimError::Sweep {
        spec: spec.into(),
        problem,
    };
    let (name, range) = spec
        .split_once('=')
        .ok_or_else(|| err("write FIELD=A..B, FIELD=A..B/STEP or FIELD=A,B,C".into()))?;
    let (field, kind) = FIELDS
        .iter()
        .find(|(f, _)| *f == name.trim())
        .copied()
        .ok_or_else(|| {
            let names: Vec<&str> = FIELDS.iter().map(|(f, _)| *f).collect();
            err(format!("unknown field; sweepable: {}", names.join(", ")))
        })?;
    let bad = |v: &str| err(format!("{v:?} is not a valid {field} value"));
    let mut values = Vec::new();
    if let Some((a, rest)) = range.split_once("..") {
        if kind == Kind::Billing {
            return Err(err("billing takes a list: per-second,hourly,never".into()));
        }
        let (b, step) = match rest.split_once('/') {
            Some((b, s)) => (b, Some(s)),
            None => (rest, None),
        };
        let lo = one(kind, a).ok_or_else(|| bad(a))?.x();
        let hi = one(kind, b).ok_or_else(|| bad(b))?.x();
        if hi < lo {
            return Err(err(format!("{b} is below {a}")));
        }
        match step {
            Some(s) => {
                let st = one(kind, s).ok_or_else(|| bad(s))?.x();
                if st <= 0.0 {
                    return Err(err("STEP must be above 0".into()));
                }
                let n = ((hi - lo) / st + 1e-9).floor() as usize + 1;
                if n > MAX_POINTS {
                    return Err(err(format!("{n} values; at most {MAX_POINTS}")));
                }
                values.extend((0..n).map(|k| from_x(kind, lo + st * k as f64)));
            }
            None => values.extend((0..10).map(|k| from_x(kind, lo + (hi - lo) * k as f64 / 9.0))),
        }
    } else {
        for v in range.split(',') {
            values.push(one(kind, v).ok_or_else(|| bad(v))?);
        }
    }
    values.dedup();
    if values.is_empty() || values.len() > MAX_POINTS {
        return Err(err(format!("needs 1 to {MAX_POINTS} values")));
    }
    Ok(Sweep { field, values })
}

/// Sets `field` to `v` in copies of the settings.
///
/// # Errors
/// A value the agent or the group would refuse, naming the field.
pub fn apply(
    field: &str,
    v: Value,
    f: &Fleet,
    a: &AgentParams,
) -> Result<(Fleet, AgentParams), String> {
    let (mut f, mut a) = (f.clone(), a.clone());
    let positive = |d: Duration| {
        if d.is_zero() {
            Err(format!("{field} must be above 0"))
        } else {
            Ok(d)
        }
    };
    match (field, v) {
        ("idle_timeout", Value::Dur(d)) => a.rules.idle_timeout = positive(d)?,
        ("min_lifetime", Value::Dur(d)) => a.rules.min_lifetime = d,
        ("hourly_window", Value::Dur(d)) => a.rules.hourly_window = positive(d)?,
        ("check_interval", Value::Dur(d)) => a.check_interval = positive(d)?,
        ("protection_linger", Value::Dur(d)) => a.protection_linger = d,
        ("backlog_per_instance", Value::Num(x)) if x >= 0.0 => a.rules.backlog_per_instance = x,
        ("billing", Value::Billing(b)) => a.rules.billing = b,
        ("min_size", Value::Int(n)) => f.min = n,
        ("max_size", Value::Int(n)) => f.max = n,
        ("target_backlog", Value::Num(x)) => f.target = x,
        ("boot", Value::Dur(d)) => f.boot = super::ms(d),
        ("warmup", Value::Dur(d)) => f.warmup = super::ms(d),
        _ => return Err(format!("{field} = {} is out of range", v.show())),
    }
    f.check()?;
    Ok((f, a))
}

/// One swept value and what it came to.
#[derive(Debug, Clone)]
pub struct Point {
    /// `field=value`, the row's label.
    pub label: String,
    pub value: Value,
    pub outcome: Outcome,
}

/// Runs the drainerd policy at every value.
///
/// # Errors
/// A value out of range ([`apply`]).
pub fn run(
    w: &Workload,
    f: &Fleet,
    a: &AgentParams,
    seed: u64,
    s: &Sweep,
    progress: &mut dyn FnMut(&str, Ms),
) -> Result<Vec<Point>, SimError> {
    let mut points = Vec::with_capacity(s.values.len());
    for &v in &s.values {
        let (f2, a2) = apply(s.field, v, f, a).map_err(|problem| SimError::Sweep {
            spec: format!("{}={}", s.field, v.show()),
            problem,
        })?;
        let label = format!("{}={}", s.field, v.show());
        progress(&label, 0);
        let outcome = engine::run(w, &f2, &Policy::Drainerd(a2), seed, &mut |t| {
            progress(&label, t)
        });
        points.push(Point {
            label,
            value: v,
            outcome,
        });
    }
    Ok(points)
}

/// The cheapest point per 1,000 jobs among those that killed nothing,
/// finished every job, and (when given) kept the p95 wait within
/// `max_p95`; ties go to the shorter p95 wait.
pub fn best(points: &[Point], max_p95: Option<Ms>) -> Option<usize> {
    points
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            let o = &p.outcome;
            o.killed == 0 && o.done == o.jobs && max_p95.is_none_or(|m| o.waits.p95 <= m)
        })
        .min_by(|(_, a), (_, b)| {
            let (a, b) = (&a.outcome, &b.outcome);
            a.per_1000_jobs()
                .total_cmp(&b.per_1000_jobs())
                .then(a.waits.p95.cmp(&b.waits.p95))
        })
        .map(|(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_steps_and_lists() {
        let s = parse("idle_timeout=1m..10m").unwrap();
        assert_eq!(s.values.len(), 10);
        assert_eq!(s.values[0], Value::Dur(Duration::from_secs(60)));
        assert_eq!(s.values[9], Value::Dur(Duration::from_secs(600)));
        let s = parse("idle_timeout=1m..30m/5m").unwrap();
        assert_eq!(s.values.len(), 6);
        assert_eq!(s.values[5].show(), "26m00s");
        let s = parse("min_size=0..3").unwrap();
        assert_eq!(
            s.values,
            vec![Value::Int(0), Value::Int(1), Value::Int(2), Value::Int(3)]
        );
        let s = parse("billing=per-second,hourly").unwrap();
        assert_eq!(s.values.len(), 2);
        assert_eq!(
            parse("backlog_per_instance=0,0.5,2").unwrap().values.len(),
            3
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        for (spec, want) in [
            ("idle_timeout", "FIELD=A..B"),
            ("idle=1m..2m", "sweepable"),
            ("idle_timeout=5m..1m", "below"),
            ("idle_timeout=1m..x", "\"x\""),
            ("idle_timeout=1s..1000s/1s", "at most"),
            ("billing=per-second..hourly", "list"),
        ] {
            let e = parse(spec).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
    }
}
