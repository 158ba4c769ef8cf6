//! The agent's background writer of job states: bounded lanes, never
//! waited on by a job (see the parent module for why updates are dropped
//! rather than waited for when the table is slow).

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{Table, TrackError, Update};

/// What the background writer did, for logs and tests.
#[derive(Debug, Default)]
pub struct TrackerStats {
    pub written: AtomicU64,
    /// Refused by the condition: a newer or final state was there.
    pub stale: AtomicU64,
    /// The write failed (table missing, throttled, unreachable).
    pub failed: AtomicU64,
    /// The in-memory queue was full: never written.
    pub dropped: AtomicU64,
}

/// Lanes of the background writer: one job's updates always take the same
/// lane (so they stay in order), different jobs' updates go in parallel.
const LANES: usize = 4;
/// One write may take this long before it counts as failed (the SDK's own
/// retries included), so a hanging table cannot pile up work.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The agent's handle: `record` never waits.
pub struct Tracker {
    /// Emptied by `close`: the lanes then end once written out.
    lanes: std::sync::Mutex<Vec<mpsc::Sender<Update>>>,
    pub instance_id: Option<String>,
    /// The DLQ's maxReceiveCount once read (see [`failure_state`]).
    max_receives: std::sync::OnceLock<Option<u32>>,
    pub stats: Arc<TrackerStats>,
    tasks: tokio::sync::Mutex<JoinSet<()>>,
}

impl Tracker {
    /// Starts the writer lanes on the current runtime.
    pub fn start(table: Table, capacity: usize, instance_id: Option<String>) -> Tracker {
        let stats = Arc::new(TrackerStats::default());
        let mut tasks = JoinSet::new();
        let mut lanes = Vec::new();
        for _ in 0..LANES {
            let (tx, rx) = mpsc::channel((capacity / LANES).max(1));
            lanes.push(tx);
            tasks.spawn(write_lane(table.clone(), rx, stats.clone()));
        }
        Tracker {
            lanes: std::sync::Mutex::new(lanes),
            instance_id,
            max_receives: std::sync::OnceLock::new(),
            stats,
            tasks: tokio::sync::Mutex::new(tasks),
        }
    }

    /// Sets the DLQ's maxReceiveCount (`None`: no DLQ) once known.
    pub fn set_max_receives(&self, max: Option<u32>) {
        let _ = self.max_receives.set(max);
    }

    /// The DLQ's maxReceiveCount: `None` until read.
    pub fn max_receives(&self) -> Option<Option<u32>> {
        self.max_receives.get().copied()
    }

    /// Queues an update for the writer; drops it (counted, logged) when the
    /// queue is full. Never waits.
    pub fn record(&self, mut u: Update) {
        if u.instance_id.is_none() {
            u.instance_id = self.instance_id.clone();
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        u.job_id.hash(&mut h);
        let sent = {
            let lanes = self.lanes.lock().expect("tracker lock");
            match lanes.len() {
                0 => Err(mpsc::error::TrySendError::Closed(u)),
                n => lanes[(h.finish() as usize) % n].try_send(u),
            }
        };
        if let Err(e) = sent {
            let n = self.stats.dropped.fetch_add(1, Relaxed);
            if n.is_power_of_two() || n == 0 {
                let u = match e {
                    mpsc::error::TrySendError::Full(u) | mpsc::error::TrySendError::Closed(u) => u,
                };
                tracing::warn!(job_id = %u.job_id, state = u.state.name(), dropped = n + 1, "job-state tracking is behind (table slow or unreachable): update dropped; the job itself is unaffected");
            }
        }
    }

    /// Lets queued updates be written for up to `patience`, then gives up
    /// on the rest (at shutdown: the agent's exit must not wait on it).
    pub async fn close(&self, patience: Duration) {
        // Dropping the senders ends each lane once it has written its queue.
        self.lanes.lock().expect("tracker lock").clear();
        let mut tasks = self.tasks.lock().await;
        let done = tokio::time::timeout(patience, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if done.is_err() {
            tasks.abort_all();
            tracing::warn!("job-state tracking: some updates were not written before exit");
        }
    }
}

async fn write_lane(table: Table, mut rx: mpsc::Receiver<Update>, stats: Arc<TrackerStats>) {
    let mut last_error: Option<String> = None;
    while let Some(u) = rx.recv().await {
        let r = tokio::time::timeout(WRITE_TIMEOUT, table.write(&u)).await;
        match r {
            Ok(Ok(())) => {
                stats.written.fetch_add(1, Relaxed);
                if last_error.take().is_some() {
                    tracing::info!(table = %table.name, "job-state tracking table reachable again");
                }
            }
            Ok(Err(TrackError::Stale(_))) => {
                stats.stale.fetch_add(1, Relaxed);
                tracing::debug!(job_id = %u.job_id, state = u.state.name(), attempt = u.attempt, "tracking update older than the stored state; ignored");
            }
            Ok(Err(e)) => fail(&stats, &mut last_error, &u, &e.to_string()),
            Err(_) => fail(&stats, &mut last_error, &u, "timed out"),
        }
    }
}

fn fail(stats: &TrackerStats, last: &mut Option<String>, u: &Update, why: &str) {
    stats.failed.fetch_add(1, Relaxed);
    // Log the first failure and each change of reason, not every write.
    if last.as_deref() != Some(why) {
        tracing::warn!(job_id = %u.job_id, state = u.state.name(), error = why, "could not record the job's state in the tracking table; the job itself is unaffected");
        *last = Some(why.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracking::JobState;

    /// A table nobody answers for (port 1 refuses connections).
    fn dead_table() -> Table {
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:1")
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .http_client(crate::aws::https_client())
            .build();
        Table::from_client(
            aws_sdk_dynamodb::Client::from_conf(conf),
            "t",
            Duration::from_secs(3600),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn recording_never_waits_and_a_full_queue_drops_and_counts() {
        let t = Tracker::start(dead_table(), 8, Some("i-1".into()));
        let start = std::time::Instant::now();
        for i in 0..2000 {
            t.record(Update::new(&format!("job-{i}"), JobState::Running, 1));
        }
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "record waited: {:?}",
            start.elapsed()
        );
        // 8 queued (2 per lane) plus at most one in flight per lane.
        let dropped = t.stats.dropped.load(Relaxed);
        assert!(dropped >= 2000 - 8 - LANES as u64, "dropped {dropped}");
        // Closing gives up on what cannot be written, within its patience.
        let start = std::time::Instant::now();
        t.close(Duration::from_millis(300)).await;
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        // After close, records are dropped, not queued.
        let before = t.stats.dropped.load(Relaxed);
        t.record(Update::new("late", JobState::Succeeded, 1));
        assert_eq!(t.stats.dropped.load(Relaxed), before + 1);
    }
}
