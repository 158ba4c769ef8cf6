//! Keeps running jobs' messages invisible: renews leases in batches.
//!
//! Each running job registers a [`Lease`]; this task wakes a few times per
//! heartbeat interval, renews every lease that is due (and those about to
//! be, so renewals share requests), and notices leases that ran out while
//! their job still runs: those messages may be delivered to another worker,
//! and the log says so. It never renews past the job's hard stop. Renewal
//! calls run alongside the ticks: one that does not answer delays neither
//! the other renewals nor the lost-lease check.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::queue::{EntryFailure, Queue, QueueError, Receipt};
use crate::config::Config;
use crate::control::Task;
use crate::decide::lease::{extension, renewal_due};
use crate::status::counters::Counters;

/// The lease on one running job's message.
#[derive(Debug, Clone)]
pub struct Lease {
    pub message_id: Arc<str>,
    pub receipt: Receipt,
    pub received_at: Instant,
    /// When the message becomes visible again unless renewed.
    pub visible_until: Instant,
    /// Past this, the job is certainly over (deadline + kill grace + margin).
    pub hard_stop: Instant,
    pub lost: bool,
}

/// Leases of the running jobs, by job number.
#[derive(Default)]
pub struct Leases(Mutex<HashMap<u64, Lease>>);

impl Leases {
    pub fn insert(&self, key: u64, lease: Lease) {
        self.0.lock().expect("leases lock").insert(key, lease);
    }
    pub fn remove(&self, key: u64) -> Option<Lease> {
        self.0.lock().expect("leases lock").remove(&key)
    }
    pub fn len(&self) -> usize {
        self.0.lock().expect("leases lock").len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The renewing task.
pub struct Heartbeat {
    pub queue: Arc<dyn Queue>,
    pub leases: Arc<Leases>,
    pub config: watch::Receiver<Arc<Config>>,
    pub counters: Arc<Counters>,
}

impl Task for Heartbeat {
    const NAME: &'static str = "lease heartbeat";

    /// Renews leases until stopped.
    async fn run(self, stop: CancellationToken) {
        let Heartbeat {
            queue,
            leases,
            config,
            counters,
        } = self;
        renew(&*queue, &leases, &config, &counters, stop).await;
    }
}

/// One renewal call's leases: (key, receipt, new visibility).
type Chunk = Vec<(u64, Receipt, Duration)>;

async fn renew(
    queue: &dyn Queue,
    leases: &Leases,
    config: &watch::Receiver<Arc<Config>>,
    counters: &Counters,
    stop: CancellationToken,
) {
    let mut last_error: Option<String> = None;
    // Renewal calls under way, and the leases they carry: a call that does
    // not answer holds up its own leases only, never the next tick (and so
    // never the lost-lease check).
    let mut in_flight = FuturesUnordered::new();
    let mut renewing: HashSet<u64> = HashSet::new();
    loop {
        let (lease, interval) = {
            let c = config.borrow();
            (c.queue.lease.0, c.queue.heartbeat_interval.0)
        };
        let tick = (interval / 4).max(Duration::from_millis(250));
        let next = Instant::now() + tick;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = sleep_until(next) => break,
                Some((chunk, sent, result)) = in_flight.next(), if !in_flight.is_empty() => {
                    let chunk: Chunk = chunk;
                    for (key, _, _) in &chunk {
                        renewing.remove(key);
                    }
                    renewed(leases, &chunk, sent, result, counters, &mut last_error);
                }
            }
        }
        let now = Instant::now();
        let due = collect_due(leases, now, lease, interval, tick, counters);
        let due: Chunk = due
            .into_iter()
            .filter(|d| !renewing.contains(&d.0))
            .collect();
        for chunk in due.chunks(10) {
            let chunk: Chunk = chunk.to_vec();
            renewing.extend(chunk.iter().map(|d| d.0));
            in_flight.push(async move {
                let entries: Vec<(&Receipt, Duration)> =
                    chunk.iter().map(|d| (&d.1, d.2)).collect();
                let result = queue.change_visibility_batch(&entries).await;
                drop(entries);
                (chunk, now, result)
            });
        }
    }
}

/// Records what one renewal call did.
fn renewed(
    leases: &Leases,
    chunk: &Chunk,
    sent: Instant,
    result: Result<Vec<EntryFailure>, QueueError>,
    counters: &Counters,
    last_error: &mut Option<String>,
) {
    match result {
        Ok(failures) => {
            *last_error = None;
            let failed: Vec<usize> = failures.iter().map(|f| f.index).collect();
            let mut map = leases.0.lock().expect("leases lock");
            for (i, (key, _, ext)) in chunk.iter().enumerate() {
                if failed.contains(&i) {
                    continue;
                }
                if let Some(l) = map.get_mut(key) {
                    l.visible_until = sent + *ext;
                    counters.lease_renewed();
                }
            }
            for f in failures {
                tracing::warn!(code = %f.code, error = %f.message, "could not renew a running job's lease");
            }
        }
        Err(e) => {
            if last_error.as_deref() != Some(e.kind.as_str()) {
                tracing::warn!(error = %e, "could not renew running jobs' leases; retrying next tick");
                *last_error = Some(e.kind.clone());
            }
        }
    }
}

/// Leases due for renewal within `slack`, as (key, receipt, new visibility);
/// marks (and logs once) leases that already ran out.
fn collect_due(
    leases: &Leases,
    now: Instant,
    lease: Duration,
    interval: Duration,
    slack: Duration,
    counters: &Counters,
) -> Vec<(u64, Receipt, Duration)> {
    let mut map = leases.0.lock().expect("leases lock");
    let mut due = Vec::new();
    for (key, l) in map.iter_mut() {
        if now > l.visible_until && !l.lost {
            l.lost = true;
            counters.lease_lost();
            tracing::warn!(
                message_id = %l.message_id,
                "the job's lease ran out while it runs (renewals failed); its message may be delivered to another worker: possible duplicate"
            );
        }
        let since = now - l.received_at;
        let until = l.visible_until - l.received_at;
        if renewal_due(since + slack, until, lease, interval) {
            if let Some(ext) = extension(since, lease, l.hard_stop - l.received_at) {
                due.push((*key, l.receipt.clone(), ext));
            }
        }
    }
    due
}

#[cfg(test)]
mod tests;
