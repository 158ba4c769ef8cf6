//! Counters and gauges of what the agent did, shared by every task.
//!
//! Every event that is logged is also counted here, in the same place. The
//! status line, the benchmark and the status page and `/metrics`
//! ([`crate::status`]) read these; nothing here decides anything.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// SQS APIs the agent calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    GetQueueAttributes,
    ReceiveMessage,
    DeleteMessageBatch,
    ChangeMessageVisibilityBatch,
    GetQueueUrl,
}

impl Api {
    pub const ALL: [Api; 5] = [
        Api::GetQueueAttributes,
        Api::ReceiveMessage,
        Api::DeleteMessageBatch,
        Api::ChangeMessageVisibilityBatch,
        Api::GetQueueUrl,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Api::GetQueueUrl => "GetQueueUrl",
            Api::GetQueueAttributes => "GetQueueAttributes",
            Api::ReceiveMessage => "ReceiveMessage",
            Api::DeleteMessageBatch => "DeleteMessageBatch",
            Api::ChangeMessageVisibilityBatch => "ChangeMessageVisibilityBatch",
        }
    }
}

/// How a job ended, as counted and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Exit 0: message deleted.
    Succeeded,
    /// Non-zero exit or killed by a signal: handed back with backoff.
    Failed,
    /// Ran past job.timeout: stopped, handed back with backoff.
    TimedOut,
    /// Stopped by the agent (shutdown): handed back at once.
    HandedBack,
    /// Not run (too large, could not start): handed back with backoff.
    Rejected,
}

impl JobOutcome {
    pub const ALL: [JobOutcome; 5] = [
        JobOutcome::Succeeded,
        JobOutcome::Failed,
        JobOutcome::TimedOut,
        JobOutcome::HandedBack,
        JobOutcome::Rejected,
    ];
    pub fn name(self) -> &'static str {
        match self {
            JobOutcome::Succeeded => "succeeded",
            JobOutcome::Failed => "failed",
            JobOutcome::TimedOut => "timed_out",
            JobOutcome::HandedBack => "handed_back",
            JobOutcome::Rejected => "rejected",
        }
    }
}

/// Counts by a label (API name, notice kind, ...). For calls made a few
/// times a minute at most; the per-job SQS counters are plain atomics.
#[derive(Default)]
pub struct Tally(Mutex<BTreeMap<(&'static str, bool), u64>>);

impl Tally {
    pub fn add(&self, label: &'static str, ok: bool) {
        *self
            .0
            .lock()
            .expect("stats lock")
            .entry((label, ok))
            .or_default() += 1;
    }
    /// (label, ok, count), sorted by label.
    pub fn counts(&self) -> Vec<(&'static str, bool, u64)> {
        self.0
            .lock()
            .expect("stats lock")
            .iter()
            .map(|((l, ok), n)| (*l, *ok, *n))
            .collect()
    }
    pub fn total(&self) -> u64 {
        self.0.lock().expect("stats lock").values().sum()
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

/// A finished job, for the status page's recent list.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecentJob {
    pub message_id: String,
    /// RFC 3339.
    pub finished_at: String,
    pub duration_seconds: f64,
    pub outcome: &'static str,
    /// "exit 0", "signal 9", "timed out after 30m", ...
    pub exit: String,
    pub receive_count: u32,
}

/// How many finished jobs the status page lists.
pub const RECENT_JOBS: usize = 20;

/// What the fleet logic last concluded, for the status page.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct FleetView {
    /// Scale-in protection as last set (None before the first decision).
    pub protected: Option<bool>,
    /// "stay" or "leave".
    pub verdict: Option<&'static str>,
    pub reason: Option<String>,
}

#[derive(Default)]
pub struct Stats {
    requests_ok: [AtomicU64; 5],
    requests_err: [AtomicU64; 5],
    jobs: [AtomicU64; 5],
    pub messages_received: AtomicU64,
    pub messages_deleted: AtomicU64,
    /// Deletes that failed for good (the message will be redelivered).
    pub delete_failures: AtomicU64,
    /// Messages made visible again (failures with backoff, hand-backs).
    pub messages_released: AtomicU64,
    pub release_failures: AtomicU64,
    pub lease_renewals: AtomicU64,
    /// Jobs whose lease ran out while they ran: possible duplicates.
    pub leases_lost: AtomicU64,
    pub output_lines_logged: AtomicU64,
    pub output_lines_dropped: AtomicU64,
    pub running: AtomicU64,
    /// Auto Scaling calls by API and result.
    pub asg: Tally,
    /// Instance metadata reads by what was read and result.
    pub metadata: Tally,
    /// Notices from instance metadata by kind (`ok` is always true).
    pub notices: Tally,
    /// How long jobs ran.
    pub job_seconds: Histogram,
    /// From ReceiveMessage's answer to the job's start.
    pub start_latency: Histogram,
    recent: Mutex<VecDeque<RecentJob>>,
    /// The target lifecycle state last read from instance metadata.
    pub lifecycle_state: Mutex<Option<String>>,
    fleet_view: Mutex<FleetView>,
    /// The notice the agent is acting on, for the status line.
    pub notice: Mutex<Option<String>>,
    /// Intake is closed for good (shutdown, notice, or leaving).
    pub draining: AtomicBool,
    /// A ReceiveMessage call is under way.
    pub receiving: AtomicBool,
    /// Woken when a busy period starts (the first job after idle).
    pub busy: tokio::sync::Notify,
    /// The fleet logic's verdict and protection, for the status line.
    pub fleet: Mutex<Option<String>>,
    pub slots: AtomicU64,
    idle_since: Mutex<Option<SystemTime>>,
    /// Unix milliseconds of the agent loop's last tick (0: not started).
    pub loop_tick: AtomicU64,
    /// The queue answered at start and on the last receive.
    pub queue_ok: AtomicBool,
    /// Job-state tracking's writes, once `[tracking]` is on.
    pub tracking: std::sync::OnceLock<std::sync::Arc<crate::tracking::TrackerStats>>,
}

impl Stats {
    pub fn request(&self, api: Api, ok: bool) {
        let i = api as usize;
        if ok {
            self.requests_ok[i].fetch_add(1, Relaxed);
        } else {
            self.requests_err[i].fetch_add(1, Relaxed);
        }
    }
    pub fn requests(&self, api: Api) -> (u64, u64) {
        let i = api as usize;
        (
            self.requests_ok[i].load(Relaxed),
            self.requests_err[i].load(Relaxed),
        )
    }
    pub fn total_requests(&self) -> u64 {
        Api::ALL
            .iter()
            .map(|a| {
                let (ok, err) = self.requests(*a);
                ok + err
            })
            .sum()
    }
    /// `ReceiveMessage=12 DeleteMessageBatch=3 ...` (calls made, failed
    /// ones included), for the final log line and the benchmark.
    pub fn requests_summary(&self) -> String {
        Api::ALL
            .iter()
            .map(|a| {
                let (ok, err) = self.requests(*a);
                format!("{}={}", a.name(), ok + err)
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
    /// Records a finished job for the recent list and the histogram.
    pub fn job_record(&self, job: RecentJob, ran: Duration) {
        self.job_seconds.observe(ran);
        let mut r = self.recent.lock().expect("stats lock");
        if r.len() == RECENT_JOBS {
            r.pop_front();
        }
        r.push_back(job);
    }
    /// Jobs finished, whatever their outcome.
    pub fn jobs_finished(&self) -> u64 {
        JobOutcome::ALL.iter().map(|o| self.jobs(*o)).sum()
    }
    /// SQS requests per finished job, failed calls and idle polls included
    /// (`None` before the first job): the measured input of `drainerd cost
    /// --requests-per-job`.
    pub fn requests_per_job(&self) -> Option<f64> {
        let jobs = self.jobs_finished();
        (jobs > 0).then(|| self.total_requests() as f64 / jobs as f64)
    }
    /// [`Stats::requests_per_job`] for a log field (`-` before any job).
    pub fn requests_per_job_text(&self) -> String {
        self.requests_per_job()
            .map_or_else(|| "-".into(), |r| format!("{r:.3}"))
    }
    /// The last [`RECENT_JOBS`] finished jobs, newest first.
    pub fn recent_jobs(&self) -> Vec<RecentJob> {
        self.recent
            .lock()
            .expect("stats lock")
            .iter()
            .rev()
            .cloned()
            .collect()
    }
    pub fn fleet_view(&self) -> FleetView {
        self.fleet_view.lock().expect("stats lock").clone()
    }
    /// Messages received and not yet settled (deleted or handed back, or
    /// given up on, in which case SQS makes them visible again).
    pub fn held(&self) -> u64 {
        let settled = self.messages_deleted.load(Relaxed)
            + self.delete_failures.load(Relaxed)
            + self.messages_released.load(Relaxed)
            + self.release_failures.load(Relaxed);
        self.messages_received.load(Relaxed).saturating_sub(settled)
    }
    /// The fleet logic's latest verdict (`None`: it does not decide, as
    /// with billing = "never") and protection.
    pub fn set_fleet(&self, verdict: Option<(bool, &str)>, protected: bool) {
        let yes_no = if protected { "yes" } else { "no" };
        let line = match verdict {
            Some((true, r)) => format!("leaving: {r} · protected: {yes_no}"),
            Some((false, r)) => format!("stays: {r} · protected: {yes_no}"),
            None => format!("billing never · protected: {yes_no}"),
        };
        *self.fleet.lock().expect("stats lock") = Some(line);
        *self.fleet_view.lock().expect("stats lock") = FleetView {
            protected: Some(protected),
            verdict: verdict.map(|(leave, _)| if leave { "leave" } else { "stay" }),
            reason: verdict.map(|(_, r)| r.to_string()),
        };
    }
    pub fn set_notice(&self, notice: String) {
        *self.notice.lock().expect("stats lock") = Some(notice);
    }
    pub fn job_done(&self, outcome: JobOutcome) {
        self.jobs[outcome as usize].fetch_add(1, Relaxed);
    }
    pub fn jobs(&self, outcome: JobOutcome) -> u64 {
        self.jobs[outcome as usize].load(Relaxed)
    }
    pub fn job_started(&self) {
        if self.running.fetch_add(1, Relaxed) == 0 {
            self.busy.notify_one();
        }
        *self.idle_since.lock().expect("stats lock") = None;
    }
    pub fn job_ended(&self) {
        if self.running.fetch_sub(1, Relaxed) == 1 {
            *self.idle_since.lock().expect("stats lock") = Some(SystemTime::now());
        }
    }
    /// When the last job ended, if none runs now (`None` while busy).
    pub fn idle_since(&self) -> Option<SystemTime> {
        *self.idle_since.lock().expect("stats lock")
    }
    /// The agent loop is alive (called every second from it).
    pub fn tick(&self) {
        let ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        self.loop_tick
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Relaxed);
    }
    pub fn last_tick(&self) -> Option<SystemTime> {
        match self.loop_tick.load(Relaxed) {
            0 => None,
            ms => Some(SystemTime::UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }
    pub fn mark_idle_now(&self) {
        *self.idle_since.lock().expect("stats lock") = Some(SystemTime::now());
    }

    /// The one-line summary for systemd's STATUS= and the log.
    pub fn summary(&self, draining: bool) -> String {
        let running = self.running.load(Relaxed);
        let slots = self.slots.load(Relaxed);
        let mut s = format!(
            "{}{running}/{slots} jobs · {} done · {} failed · {} handed back",
            if draining { "draining · " } else { "" },
            self.jobs(JobOutcome::Succeeded),
            self.jobs(JobOutcome::Failed)
                + self.jobs(JobOutcome::TimedOut)
                + self.jobs(JobOutcome::Rejected),
            self.jobs(JobOutcome::HandedBack),
        );
        if let Some(n) = self.notice.lock().expect("stats lock").as_deref() {
            s.push_str(" · ");
            s.push_str(n);
        }
        if let Some(t) = self.idle_since() {
            let idle = SystemTime::now().duration_since(t).unwrap_or_default();
            s.push_str(&format!(" · idle {}s", idle.as_secs()));
        }
        if let Some(f) = self.fleet.lock().expect("stats lock").as_deref() {
            s.push_str(" · ");
            s.push_str(f);
        }
        s
    }
}
