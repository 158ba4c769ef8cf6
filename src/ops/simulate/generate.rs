//! Seeded workload generators: `poisson:RATE`, `bursty[:RATE]`,
//! `diurnal[:RATE]` (docs/simulate.md, "Generators").
//!
//! RATE is the mean number of jobs per second, or per unit with `/s`, `/m`,
//! `/h`, `/d` (`poisson:0.5`, `bursty:2/m`, `diurnal:20000/d`). Run times
//! are Erlang-2 distributed around the mean (less skewed than exponential,
//! never negative). The same spec, length, mean and seed always give the
//! same jobs.

use fastrand::Rng;

use super::workload::{Job, Workload, NO_GROUP};
use super::{show, Ms, SimError, HOUR, MINUTE, SECOND};

/// The arrival pattern.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// Arrivals at a constant rate.
    Poisson,
    /// A fifth of the rate as steady background; the rest in bursts that
    /// start on average every [`BURST_GAP`] and spread over
    /// [`BURST_SPREAD`], their sizes exponentially distributed.
    Bursty,
    /// A daily cycle: `rate × (1 − 0.8 cos(2πt / 1 d))`, quiet at midnight
    /// (a fifth of the mean), busiest at noon (1.8 × the mean).
    Diurnal,
}

/// Mean time between bursts of the `bursty` shape.
pub const BURST_GAP: Ms = 2 * HOUR;
/// How long one burst takes to arrive.
pub const BURST_SPREAD: Ms = 10 * MINUTE;

/// A parsed `--generate` value.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub shape: Shape,
    /// Mean jobs per second.
    pub rate: f64,
    /// As given, for the report.
    pub text: String,
}

/// Parses `poisson:RATE`, `bursty[:RATE]` or `diurnal[:RATE]`.
///
/// # Errors
/// An unknown shape or a rate that is not a positive number.
pub fn parse_spec(s: &str) -> Result<Spec, SimError> {
    let err = |problem: &str| SimError::Generator {
        spec: s.into(),
        problem: problem.into(),
    };
    let (name, rate) = match s.split_once(':') {
        Some((n, r)) => (n, Some(r)),
        None => (s, None),
    };
    let (shape, default) = match name {
        "poisson" => (Shape::Poisson, None),
        "bursty" => (Shape::Bursty, Some(2.0 / 60.0)),
        "diurnal" => (Shape::Diurnal, Some(1.0 / 60.0)),
        _ => {
            return Err(err(
                "unknown generator; use poisson:RATE, bursty[:RATE] or diurnal[:RATE]",
            ))
        }
    };
    let rate = match (rate, default) {
        (Some(r), _) => parse_rate(r).ok_or_else(|| {
            err("RATE must be a positive number of jobs per second, or per unit as in 2/m, 100/h, 20000/d")
        })?,
        (None, Some(d)) => d,
        (None, None) => return Err(err("poisson needs a rate, e.g. poisson:0.5 or poisson:30/m")),
    };
    Ok(Spec {
        shape,
        rate,
        text: s.into(),
    })
}

fn parse_rate(r: &str) -> Option<f64> {
    let (n, per) = match r.split_once('/') {
        Some((n, u)) => (n, u),
        None => (r, "s"),
    };
    let secs = match per {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return None,
    };
    let v: f64 = n.trim().parse().ok()?;
    (v.is_finite() && v > 0.0).then_some(v / secs)
}

/// An exponential variate with the given mean (in ms, as f64).
fn exp(rng: &mut Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.f64()).ln()
}

/// Erlang-2 run time with mean `mean` ms, at least 1 ms.
fn run_time(rng: &mut Rng, mean: Ms) -> Ms {
    let half = mean as f64 / 2.0;
    ((exp(rng, half) + exp(rng, half)).round() as Ms).max(1)
}

/// Poisson arrivals at `rate` per ms over `[from, to)`, thinned by
/// `keep(t)` (a probability, for non-constant rates).
fn arrivals(
    rng: &mut Rng,
    rate: f64,
    from: f64,
    to: f64,
    keep: &dyn Fn(f64) -> f64,
    out: &mut Vec<f64>,
) {
    if rate <= 0.0 {
        return;
    }
    let mut t = from + exp(rng, 1.0 / rate);
    while t < to {
        if rng.f64() < keep(t) {
            out.push(t);
        }
        t += exp(rng, 1.0 / rate);
    }
}

/// Generates `length` ms of jobs.
pub fn generate(spec: &Spec, length: Ms, mean_run: Ms, seed: u64) -> Workload {
    let mut rng = Rng::with_seed(seed);
    let per_ms = spec.rate / SECOND as f64;
    let end = length as f64;
    let mut times = Vec::with_capacity((per_ms * end * 1.1) as usize + 16);
    match spec.shape {
        Shape::Poisson => arrivals(&mut rng, per_ms, 0.0, end, &|_| 1.0, &mut times),
        Shape::Diurnal => {
            let day = 24.0 * HOUR as f64;
            let shape = move |t: f64| (1.0 - 0.8 * (std::f64::consts::TAU * t / day).cos()) / 1.8;
            arrivals(&mut rng, per_ms * 1.8, 0.0, end, &shape, &mut times);
        }
        Shape::Bursty => {
            arrivals(&mut rng, per_ms * 0.2, 0.0, end, &|_| 1.0, &mut times);
            let mean_size = per_ms * 0.8 * BURST_GAP as f64;
            let mut starts = Vec::new();
            arrivals(
                &mut rng,
                1.0 / BURST_GAP as f64,
                0.0,
                end,
                &|_| 1.0,
                &mut starts,
            );
            for b in starts {
                let n = exp(&mut rng, mean_size).round().max(1.0) as usize;
                for _ in 0..n {
                    let t = b + rng.f64() * BURST_SPREAD as f64;
                    if t < end {
                        times.push(t);
                    }
                }
            }
        }
    }
    times.sort_by(f64::total_cmp);
    let jobs = times
        .into_iter()
        .map(|t| Job {
            enqueue: t as Ms,
            run: run_time(&mut rng, mean_run),
            group: NO_GROUP,
        })
        .collect();
    let source = format!(
        "{} for {}, mean run {}, seed {seed}",
        spec.text,
        show(length),
        show(mean_run)
    );
    Workload::new(jobs, Vec::new(), source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::simulate::DAY;

    #[test]
    fn specs_and_rates() {
        assert_eq!(parse_spec("poisson:2").unwrap().rate, 2.0);
        assert_eq!(parse_spec("poisson:30/m").unwrap().rate, 0.5);
        assert!((parse_spec("bursty").unwrap().rate - 2.0 / 60.0).abs() < 1e-12);
        assert_eq!(parse_spec("diurnal:86400/d").unwrap().rate, 1.0);
        for bad in ["poisson", "poisson:-1", "poisson:0", "zipf:1", "bursty:3/w"] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn same_seed_same_jobs_and_about_the_asked_rate() {
        for shape in ["poisson:0.05", "bursty:3/m", "diurnal:3/m"] {
            let s = parse_spec(shape).unwrap();
            let a = generate(&s, 3 * DAY, 60 * SECOND, 7);
            let b = generate(&s, 3 * DAY, 60 * SECOND, 7);
            assert_eq!(a, b, "{shape}");
            assert_ne!(a.jobs, generate(&s, 3 * DAY, 60 * SECOND, 8).jobs);
            let want = s.rate * 3.0 * 86_400.0;
            let got = a.jobs.len() as f64;
            // Bursts make the count noisy: a few dozen bursts in 3 days.
            assert!(
                (got / want - 1.0).abs() < 0.35,
                "{shape}: {got} jobs, ~{want} asked"
            );
            let mean = a.work() as f64 / got;
            assert!(
                (mean / 60_000.0 - 1.0).abs() < 0.1,
                "{shape}: mean run {mean}"
            );
            assert!(a.jobs.iter().all(|j| j.enqueue < 3 * DAY && j.run >= 1));
        }
    }
}
