//! Counters and gauges of what the agent did, shared by every task.
//!
//! Every event that is logged is also counted here, in the same place. The
//! status line, the benchmark and (later) `/metrics` read these; nothing here
//! decides anything.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::SystemTime;

/// SQS APIs the agent calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    GetQueueAttributes,
    ReceiveMessage,
    DeleteMessageBatch,
    ChangeMessageVisibilityBatch,
}

impl Api {
    pub const ALL: [Api; 4] = [
        Api::GetQueueAttributes,
        Api::ReceiveMessage,
        Api::DeleteMessageBatch,
        Api::ChangeMessageVisibilityBatch,
    ];
    pub fn name(self) -> &'static str {
        match self {
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

#[derive(Default)]
pub struct Stats {
    requests_ok: [AtomicU64; 4],
    requests_err: [AtomicU64; 4],
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
    pub metadata_ok: AtomicU64,
    pub asg_ok: AtomicU64,
    pub asg_err: AtomicU64,
    pub metadata_err: AtomicU64,
    pub notices_seen: AtomicU64,
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
    pub fn metadata_request(&self, ok: bool) {
        if ok {
            self.metadata_ok.fetch_add(1, Relaxed);
        } else {
            self.metadata_err.fetch_add(1, Relaxed);
        }
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
    pub fn set_fleet(&self, status: String) {
        *self.fleet.lock().expect("stats lock") = Some(status);
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
