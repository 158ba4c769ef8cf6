//! The agent's background writer of job states: bounded lanes, never
//! waited on by a job (see the parent module for why updates are dropped
//! rather than waited for when the table is slow).
//!
//! [`Recorder`] is the jobs' handle (`record` never waits); [`Writer`] is
//! the task that writes, started with the others and stopped with them at
//! exit, when it writes what is queued for at most its patience.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use super::{Table, TrackError, Update};
use crate::control::Task;

/// What the background writer did, for logs and tests.
#[derive(Debug, Default)]
pub struct RecorderStats {
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
/// At exit, queued updates are written for at most this long: the agent's
/// exit never waits long on the tracking table.
pub const EXIT_PATIENCE: Duration = Duration::from_secs(5);

/// The jobs' handle: `record` never waits.
pub struct Recorder {
    lanes: Vec<mpsc::Sender<Update>>,
    pub instance_id: Option<String>,
    /// The DLQ's maxReceiveCount once read (see [`super::failure_state`]).
    max_receives: OnceLock<Option<u32>>,
    pub stats: Arc<RecorderStats>,
}

/// The task that writes what the [`Recorder`] queues.
pub struct Writer {
    table: Table,
    lanes: Vec<mpsc::Receiver<Update>>,
    stats: Arc<RecorderStats>,
    /// How long queued updates may still be written once stopped.
    pub patience: Duration,
}

impl Recorder {
    /// The handle and its writer, with `capacity` updates queued at most.
    pub fn new(table: Table, capacity: usize, instance_id: Option<String>) -> (Recorder, Writer) {
        let stats = Arc::new(RecorderStats::default());
        let (senders, receivers) = (0..LANES)
            .map(|_| mpsc::channel((capacity / LANES).max(1)))
            .unzip();
        (
            Recorder {
                lanes: senders,
                instance_id,
                max_receives: OnceLock::new(),
                stats: stats.clone(),
            },
            Writer {
                table,
                lanes: receivers,
                stats,
                patience: EXIT_PATIENCE,
            },
        )
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
    /// queue is full or the writer has stopped. Never waits.
    pub fn record(&self, mut u: Update) {
        if u.instance_id.is_none() {
            u.instance_id = self.instance_id.clone();
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        u.job_id.hash(&mut h);
        let lane = (h.finish() as usize) % self.lanes.len();
        if let Err(e) = self.lanes[lane].try_send(u) {
            let n = self.stats.dropped.fetch_add(1, Relaxed);
            if n.is_power_of_two() || n == 0 {
                let u = match e {
                    mpsc::error::TrySendError::Full(u) | mpsc::error::TrySendError::Closed(u) => u,
                };
                tracing::warn!(job_id = %u.job_id, state = u.state.name(), dropped = n + 1, "job-state tracking is behind (table slow or unreachable): update dropped; the job itself is unaffected");
            }
        }
    }
}

impl Task for Writer {
    const NAME: &'static str = "tracking writer";

    /// Writes until `stop`, then what is queued for at most `patience`.
    async fn run(self, stop: CancellationToken) {
        let Writer {
            table,
            lanes,
            stats,
            patience,
        } = self;
        let lanes = lanes
            .into_iter()
            .map(|rx| write_lane(&table, rx, &stats, &stop, patience));
        let unwritten: usize = futures_util::future::join_all(lanes)
            .await
            .into_iter()
            .sum();
        if unwritten > 0 {
            tracing::warn!(
                unwritten,
                "job-state tracking: some updates were not written before exit"
            );
        }
    }
}

/// One lane until `stop`; then its queue (and the write in flight) within
/// `patience`. Returns how many updates were left unwritten.
async fn write_lane(
    table: &Table,
    mut rx: mpsc::Receiver<Update>,
    stats: &RecorderStats,
    stop: &CancellationToken,
    patience: Duration,
) -> usize {
    let mut last_error: Option<String> = None;
    // Set once stopped: no new updates are taken, and nothing is written
    // after it.
    let mut until: Option<Instant> = None;
    let stopped = |rx: &mut mpsc::Receiver<Update>| {
        rx.close();
        Instant::now() + patience
    };
    loop {
        let next = match until {
            None => tokio::select! {
                u = rx.recv() => u,
                () = stop.cancelled() => {
                    until = Some(stopped(&mut rx));
                    continue;
                }
            },
            Some(t) => match timeout_at(t, rx.recv()).await {
                Ok(u) => u,
                Err(_) => return rx.len(),
            },
        };
        let Some(u) = next else { return 0 };
        let writing = write(table, &u, stats, &mut last_error);
        tokio::pin!(writing);
        if until.is_none() {
            tokio::select! {
                () = &mut writing => continue,
                () = stop.cancelled() => until = Some(stopped(&mut rx)),
            }
        }
        if let Some(t) = until {
            if timeout_at(t, writing).await.is_err() {
                return 1 + rx.len();
            }
        }
    }
}

async fn write(table: &Table, u: &Update, stats: &RecorderStats, last_error: &mut Option<String>) {
    match timeout(WRITE_TIMEOUT, table.write(u)).await {
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
        Ok(Err(e)) => fail(stats, last_error, u, &e.to_string()),
        Err(_) => fail(stats, last_error, u, "timed out"),
    }
}

fn fail(stats: &RecorderStats, last: &mut Option<String>, u: &Update, why: &str) {
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
        let (t, mut writer) = Recorder::new(dead_table(), 8, Some("i-1".into()));
        writer.patience = Duration::from_millis(300);
        let stop = CancellationToken::new();
        let writing = tokio::spawn(writer.run(stop.clone()));
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
        stop.cancel();
        writing.await.unwrap();
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
