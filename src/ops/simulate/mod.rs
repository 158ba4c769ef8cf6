//! `drainerd simulate`: what a leave policy costs on a workload, before the
//! fleet pays for it (docs/simulate.md).
//!
//! This module owns a discrete-event simulation of an Auto Scaling group
//! draining a queue: the workload (a trace or a seeded generator), the
//! group (min/max, target tracking on backlog per instance, boot, billing,
//! spot interruptions), four policies compared on the same workload, the
//! clairvoyant lower bound, sweeps of one setting, the report and the
//! chart. Under the drainerd policy every simulated instance takes its
//! stay/leave and protection decisions through the agent's own pure
//! functions ([`crate::decide::leave::decide`],
//! [`crate::decide::protection::wanted`]), fed as `fleet/membership.rs`
//! feeds them, from the same `drainerd.toml`.
//!
//! The core never does I/O, reads no clock and uses no runtime: time is a
//! number of milliseconds advanced by a binary heap of events, randomness
//! is a seeded `fastrand::Rng`, so the same seed gives the same output.
//! Reading traces and writing files belongs to `workload` (parsing from
//! any reader) and the CLI (`ops/cli/simulate.rs`).

pub mod bound;
pub mod chart;
pub mod engine;
pub mod fleet;
pub mod generate;
pub mod outcome;
pub mod policies;
pub mod report;
pub mod sweep;
pub mod workload;

mod agent;
mod queue;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use engine::run;
pub use fleet::{Fleet, Pay};
pub use outcome::{Outcome, Sample, Waits};
pub use policies::{AgentParams, Policy};
pub use workload::{Job, Workload};

/// Simulated time: milliseconds since the workload's start.
pub type Ms = u64;
pub const SECOND: Ms = 1000;
pub const MINUTE: Ms = 60 * SECOND;
pub const HOUR: Ms = 60 * MINUTE;
pub const DAY: Ms = 24 * HOUR;

/// A duration as simulated milliseconds (saturating).
pub fn ms(d: Duration) -> Ms {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A short human form for tables: `850ms`, `45s`, `3m05s`, `1h02m`, `2d03h`.
pub fn show(t: Ms) -> String {
    let s = t / SECOND;
    if t < SECOND {
        format!("{t}ms")
    } else if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600)
    }
}

/// Why a simulation could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("trace {path}: cannot read: {source}; pass an existing file to --trace")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("trace {path} line {line}: {problem}")]
    Trace {
        path: String,
        line: usize,
        problem: String,
    },
    #[error("trace {0}: no jobs in it")]
    Empty(String),
    #[error("--generate {spec:?}: {problem}")]
    Generator { spec: String, problem: String },
    #[error("--sweep {spec:?}: {problem}")]
    Sweep { spec: String, problem: String },
}

/// Runs every policy of [`policies::lineup`] on `w` and works out the
/// lower bound: the comparison `drainerd simulate` prints.
pub fn compare(
    w: &Workload,
    f: &Fleet,
    agent: &AgentParams,
    seed: u64,
    progress: &mut dyn FnMut(&str, Ms),
) -> Vec<Outcome> {
    policies::lineup(w, f, agent)
        .iter()
        .map(|p| {
            let name = p.name();
            progress(&name, 0);
            engine::run(w, f, p, seed, &mut |t| progress(&name, t))
        })
        .collect()
}
