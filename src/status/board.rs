//! The queue, DLQ and group figures the page shows, and when they are read.
//!
//! Queue and group figures cost requests, so they are never read per view:
//! a view only marks the [`Board`] as looked at; the [`Refresher`] re-reads
//! the figures (through a [`Source`], which `aws::figures` implements) at
//! most once per `status.refresh_interval`, and only while someone has
//! looked recently. An agent nobody watches makes no extra request, and a
//! page storm makes no more than one watcher does.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::counters::Counters;
use crate::aws::autoscaling::Group;
use crate::aws::sqs::Depths;
use crate::control::Task;

/// Views keep the figures fresh for this many refresh intervals.
const WATCHED_INTERVALS: u32 = 4;

/// Queue, DLQ and group figures as last read.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub queue: Option<Depths>,
    /// `queue` was read by the last refresh (false: that read failed, and
    /// `queue` is the last known).
    pub queue_fresh: bool,
    pub dlq_url: Option<String>,
    pub dlq: Option<Depths>,
    pub group: Option<Group>,
    pub fetched_at: Option<SystemTime>,
    /// The last refresh's failures, for the page.
    pub errors: Vec<String>,
}

/// The cached figures and who looked at them.
#[derive(Default)]
pub struct Board {
    figures: Mutex<Figures>,
    /// Unix seconds of the last view.
    last_view: AtomicU64,
    wake: Notify,
}

impl Board {
    /// A view: returns the cached figures and asks for a refresh if they
    /// are older than `interval` (the refresher takes at most one).
    pub fn view(&self, interval: Duration) -> Figures {
        let now = SystemTime::now();
        self.last_view.store(unix(now), Relaxed);
        let f = self.figures.lock().expect("board lock").clone();
        let stale = f
            .fetched_at
            .is_none_or(|t| now.duration_since(t).unwrap_or_default() >= interval);
        if stale {
            self.wake.notify_one();
        }
        f
    }
    fn watched(&self, interval: Duration) -> bool {
        let last = self.last_view.load(Relaxed);
        unix(SystemTime::now()).saturating_sub(last) <= (interval * WATCHED_INTERVALS).as_secs()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Where the figures come from.
pub trait Source: Send + Sync + 'static {
    /// Reads the figures afresh. `last` is what the previous read found
    /// (the DLQ's URL, once known, is not looked up again); failures go
    /// into `errors` and leave the last known values in place.
    fn read<'a>(&'a self, last: &'a Figures) -> Pin<Box<dyn Future<Output = Figures> + Send + 'a>>;
}

/// Re-reads the figures when a view asks, then every `interval` while
/// views continue, until stopped. Each fresh queue depth also goes into
/// the last hour's history (the chart's queue line).
pub struct Refresher {
    pub board: Arc<Board>,
    pub source: Arc<dyn Source>,
    pub interval: Duration,
    pub counters: Arc<Counters>,
}

impl Task for Refresher {
    const NAME: &'static str = "status figures";

    async fn run(self, stop: CancellationToken) {
        let Refresher {
            board,
            source,
            interval,
            counters,
        } = self;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = board.wake.notified() => {}
            }
            while board.watched(interval) {
                let last = board.figures.lock().expect("board lock").clone();
                let mut next = tokio::select! {
                    () = stop.cancelled() => return,
                    f = source.read(&last) => f,
                };
                for e in &next.errors {
                    tracing::debug!(error = %e, "status figures: a read failed; showing the last known values");
                }
                let now = SystemTime::now();
                next.fetched_at = Some(now);
                if let Some(q) = next.queue.as_ref().filter(|_| next.queue_fresh) {
                    counters.history.queue_depth(now, q.visible);
                }
                *board.figures.lock().expect("board lock") = next;
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(interval) => {}
                }
            }
        }
    }
}
