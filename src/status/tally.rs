//! The two kinds of figure that are not plain counters: counts by label
//! ([`Tally`]) and durations by bucket ([`Histogram`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Counts by a label (API name, notice kind, ...). For calls made a few
/// times a minute at most; the per-job SQS counters are plain atomics.
#[derive(Default)]
pub struct Tally(Mutex<BTreeMap<(&'static str, bool), u64>>);

impl Tally {
    pub fn add(&self, label: &'static str, ok: bool) {
        *self
            .0
            .lock()
            .expect("counters lock")
            .entry((label, ok))
            .or_default() += 1;
    }
    /// (label, ok, count), sorted by label.
    pub fn counts(&self) -> Vec<(&'static str, bool, u64)> {
        self.0
            .lock()
            .expect("counters lock")
            .iter()
            .map(|((l, ok), n)| (*l, *ok, *n))
            .collect()
    }
    pub fn total(&self) -> u64 {
        self.0.lock().expect("counters lock").values().sum()
    }
}

/// Upper bounds (seconds) of the histogram buckets: 1 ms to 1 h, roughly
/// 1-2.5-5 per decade, so one layout serves job durations (seconds to
/// hours) and receive-to-start latency (milliseconds).
pub const BUCKETS: [f64; 20] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// A Prometheus-style histogram over [`BUCKETS`] (non-cumulative counts
/// here; the exposition sums them).
#[derive(Default)]
pub struct Histogram {
    /// One per bound, plus the last for +Inf.
    counts: [AtomicU64; 21],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS.partition_point(|b| *b < secs);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }
    /// Per-bucket counts (the last is above 1 h) and the sum in seconds.
    pub fn read(&self) -> (Vec<u64>, f64) {
        (
            self.counts.iter().map(|c| c.load(Relaxed)).collect(),
            self.sum_micros.load(Relaxed) as f64 / 1e6,
        )
    }
}
