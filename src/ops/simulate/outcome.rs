//! What one simulated policy came to: instance time and its bill, jobs
//! done, killed and interrupted, waits, the group's size range, the
//! clairvoyant bound of its own schedule, and a per-minute series for the
//! chart.

use super::bound;
use super::engine::Inst;
use super::fleet::{billed, Fleet};
use super::workload::Workload;
use super::Ms;

const NONE: u32 = u32::MAX;

/// One CloudWatch minute: instances in the group, visible backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub t: Ms,
    pub live: u32,
    pub visible: u64,
}

/// Enqueue-to-start waits of the runs that finished (or were running at
/// the horizon): a killed job's wait runs to its last start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Waits {
    pub p50: Ms,
    pub p95: Ms,
    pub max: Ms,
    /// Jobs that started.
    pub started: usize,
}

impl Waits {
    /// Nearest-rank percentiles of `waits` (reordered).
    pub fn of(waits: &mut [Ms]) -> Waits {
        let n = waits.len();
        if n == 0 {
            return Waits::default();
        }
        let mut rank = |p: usize| {
            let k = (n * p).div_ceil(100).clamp(1, n) - 1;
            *waits.select_nth_unstable(k).1
        };
        let (p50, p95) = (rank(50), rank(95));
        Waits {
            p50,
            p95,
            max: waits.iter().copied().max().unwrap_or(0),
            started: n,
        }
    }
}

/// Counters the engine keeps while it runs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tally {
    pub done: usize,
    pub launches: u32,
    pub killed: u64,
    pub interrupted: u64,
    pub busy_terminations: u64,
    pub leaves: u64,
    pub live_range: (u32, u32),
    pub desired_range: (u32, u32),
}

impl Tally {
    pub fn new(initial: u32) -> Tally {
        Tally {
            done: 0,
            launches: 0,
            killed: 0,
            interrupted: 0,
            busy_terminations: 0,
            leaves: 0,
            live_range: (initial, initial),
            desired_range: (initial, initial),
        }
    }

    pub fn sizes(&mut self, live: u32, desired: u32) {
        self.live_range = (self.live_range.0.min(live), self.live_range.1.max(live));
        self.desired_range = (
            self.desired_range.0.min(desired),
            self.desired_range.1.max(desired),
        );
    }
}

/// One policy's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub policy: String,
    pub jobs: usize,
    /// Jobs finished by the horizon.
    pub done: usize,
    pub launches: u32,
    /// Instance time used, launch to termination (or the horizon).
    pub used: Ms,
    /// Instance time billed (60 s minimum or whole hours).
    pub paid: Ms,
    pub cost: f64,
    /// Runs cut short because the group terminated their instance
    /// (scale-in, or a leave: never under drainerd).
    pub killed: u64,
    /// Runs cut short by spot interruptions (drainerd hands them back
    /// before the deadline; plain workers lose them).
    pub interrupted: u64,
    /// Terminations of an instance with a job running, for any reason.
    pub busy_terminations: u64,
    /// Instances that left the group themselves.
    pub leaves: u64,
    pub waits: Waits,
    /// The group's MinSize and MaxSize under this policy.
    pub bounds: (u32, u32),
    /// Fewest and most instances in the group (booting included).
    pub live_range: (u32, u32),
    pub desired_range: (u32, u32),
    /// The clairvoyant bound of this policy's own schedule, instance-ms.
    pub own_bound: Ms,
    pub series: Vec<Sample>,
}

impl Outcome {
    pub fn per_1000_jobs(&self) -> f64 {
        per_1000(self.cost, self.done)
    }
}

/// Dollars per 1,000 jobs done.
pub fn per_1000(cost: f64, done: usize) -> f64 {
    if done == 0 {
        0.0
    } else {
        cost / done as f64 * 1000.0
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn finish(
    policy: String,
    w: &Workload,
    f: &Fleet,
    bounds: (u32, u32),
    insts: &[Inst],
    done: &[(Ms, Ms)],
    on: &[u32],
    start: &[Ms],
    tally: Tally,
    series: Vec<Sample>,
) -> Outcome {
    let h = f.horizon;
    let (mut used, mut paid) = (0, 0);
    for i in insts {
        let end = i.end.unwrap_or(h).min(h);
        let life = end - i.launch;
        used += life;
        paid += billed(life, i.end.is_some_and(|e| e < h), f.pay);
    }
    // The runs that finished, and those still running at the horizon.
    let runs = done
        .iter()
        .zip(on.iter().zip(start))
        .filter_map(|(&d, (&o, &s))| {
            if d.0 != Ms::MAX {
                Some(d)
            } else if o != NONE {
                Some((s, h))
            } else {
                None
            }
        });
    let runs: Vec<(Ms, Ms)> = runs.collect();
    let own_bound = bound::instance_ms(runs.iter().copied(), f.concurrency, f.boot, h);
    let mut waits: Vec<Ms> = Vec::with_capacity(runs.len());
    for (j, (&d, (&o, &s))) in done.iter().zip(on.iter().zip(start)).enumerate() {
        let started = if d.0 != Ms::MAX {
            d.0
        } else if o != NONE {
            s
        } else {
            continue;
        };
        waits.push(started - w.jobs[j].enqueue);
    }
    Outcome {
        policy,
        jobs: w.jobs.len(),
        done: tally.done,
        launches: tally.launches,
        used,
        paid,
        cost: f.dollars(paid),
        killed: tally.killed,
        interrupted: tally.interrupted,
        busy_terminations: tally.busy_terminations,
        leaves: tally.leaves,
        waits: Waits::of(&mut waits),
        bounds,
        live_range: tally.live_range,
        desired_range: tally.desired_range,
        own_bound,
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut w: Vec<Ms> = (1..=100).collect();
        let s = Waits::of(&mut w);
        assert_eq!((s.p50, s.p95, s.max, s.started), (50, 95, 100, 100));
        assert_eq!(Waits::of(&mut [7]).p95, 7);
        assert_eq!(Waits::of(&mut []), Waits::default());
    }
}
