//! Counters and gauges of what the agent did, for display: the status line,
//! the status page, `/metrics` and the final log line.
//!
//! Every event that is logged is also counted here, in the same place, by a
//! method named for the event. Nothing decides from these figures: what
//! guards leaving the group is the drain's `Occupancy`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use super::history::{History, Totals};
pub use super::tally::{Histogram, Tally, BUCKETS};
use crate::decide::outcome::JobOutcome;
use crate::drain::occupancy::Load;

/// SQS APIs the agent calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    GetQueueAttributes,
    ReceiveMessage,
    DeleteMessageBatch,
    ChangeMessageVisibilityBatch,
    GetQueueUrl,
    /// Copies of handed-back messages.
    SendMessageBatch,
}

impl Api {
    pub const ALL: [Api; 6] = [
        Api::GetQueueAttributes,
        Api::ReceiveMessage,
        Api::DeleteMessageBatch,
        Api::ChangeMessageVisibilityBatch,
        Api::GetQueueUrl,
        Api::SendMessageBatch,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Api::GetQueueUrl => "GetQueueUrl",
            Api::GetQueueAttributes => "GetQueueAttributes",
            Api::ReceiveMessage => "ReceiveMessage",
            Api::DeleteMessageBatch => "DeleteMessageBatch",
            Api::ChangeMessageVisibilityBatch => "ChangeMessageVisibilityBatch",
            Api::SendMessageBatch => "SendMessageBatch",
        }
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
pub struct FleetVerdict {
    /// Scale-in protection as last set (None before the first decision).
    pub protected: Option<bool>,
    /// "stay" or "leave".
    pub verdict: Option<&'static str>,
    pub reason: Option<String>,
}

/// Message counts since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Messages {
    pub received: u64,
    pub deleted: u64,
    /// Deletes that failed for good (the message will be redelivered).
    pub delete_failures: u64,
    /// Messages made visible again (failures with backoff, hand-backs).
    pub released: u64,
    pub release_failures: u64,
    pub lease_renewals: u64,
    /// Jobs whose lease ran out while they ran: possible duplicates.
    pub leases_lost: u64,
    /// Hand-backs carried out by a copy (their receive budget untouched).
    pub copied: u64,
    pub output_lines_logged: u64,
    pub output_lines_dropped: u64,
}

#[derive(Default)]
pub struct Counters {
    requests_ok: [AtomicU64; 6],
    requests_err: [AtomicU64; 6],
    jobs: [AtomicU64; 6],
    received: AtomicU64,
    deleted: AtomicU64,
    delete_failures: AtomicU64,
    released: AtomicU64,
    release_failures: AtomicU64,
    lease_renewals: AtomicU64,
    leases_lost: AtomicU64,
    copied: AtomicU64,
    output_lines_logged: AtomicU64,
    output_lines_dropped: AtomicU64,
    /// Auto Scaling calls by API and result.
    pub asg: Tally,
    /// Instance metadata reads by what was read and result.
    pub metadata: Tally,
    /// Notices from instance metadata by kind (`ok` is always true).
    pub notices: Tally,
    /// Status page requests refused, by reason (`host`, `origin`, `token`,
    /// `rate`, `body`; `ok` is always false).
    pub page_refusals: Tally,
    /// How long jobs ran.
    pub job_seconds: Histogram,
    /// From ReceiveMessage's answer to the job's start.
    pub start_latency: Histogram,
    /// The last hour by minute, sampled by [`Counters::tick`].
    pub history: History,
    recent: Mutex<VecDeque<RecentJob>>,
    lifecycle_state: Mutex<Option<String>>,
    fleet_verdict: Mutex<FleetVerdict>,
    fleet_line: Mutex<Option<String>>,
    notice: Mutex<Option<String>>,
    start_problem: Mutex<Option<String>>,
    slots: AtomicU64,
    /// Unix milliseconds of the supervisor loop's last tick (0: not started).
    loop_tick: AtomicU64,
    queue_ok: AtomicBool,
    tracking: OnceLock<Arc<crate::tracking::RecorderStats>>,
}

impl Counters {
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

    pub fn received(&self, n: usize) {
        self.received.fetch_add(n as u64, Relaxed);
    }
    pub fn deleted(&self) {
        self.deleted.fetch_add(1, Relaxed);
    }
    pub fn delete_failed(&self) {
        self.delete_failures.fetch_add(1, Relaxed);
    }
    pub fn released(&self) {
        self.released.fetch_add(1, Relaxed);
    }
    pub fn release_failed(&self) {
        self.release_failures.fetch_add(1, Relaxed);
    }
    pub fn lease_renewed(&self) {
        self.lease_renewals.fetch_add(1, Relaxed);
    }
    pub fn lease_lost(&self) {
        self.leases_lost.fetch_add(1, Relaxed);
    }
    pub fn copied(&self) {
        self.copied.fetch_add(1, Relaxed);
    }
    pub fn output_line(&self, logged: bool) {
        let c = if logged {
            &self.output_lines_logged
        } else {
            &self.output_lines_dropped
        };
        c.fetch_add(1, Relaxed);
    }
    pub fn messages(&self) -> Messages {
        Messages {
            received: self.received.load(Relaxed),
            deleted: self.deleted.load(Relaxed),
            delete_failures: self.delete_failures.load(Relaxed),
            released: self.released.load(Relaxed),
            release_failures: self.release_failures.load(Relaxed),
            lease_renewals: self.lease_renewals.load(Relaxed),
            leases_lost: self.leases_lost.load(Relaxed),
            copied: self.copied.load(Relaxed),
            output_lines_logged: self.output_lines_logged.load(Relaxed),
            output_lines_dropped: self.output_lines_dropped.load(Relaxed),
        }
    }

    /// A finished job: its outcome, the recent list and the histogram.
    pub fn job_finished(&self, outcome: JobOutcome, job: RecentJob, ran: Duration) {
        self.jobs[outcome as usize].fetch_add(1, Relaxed);
        self.job_seconds.observe(ran);
        let mut r = self.recent.lock().expect("counters lock");
        if r.len() == RECENT_JOBS {
            r.pop_front();
        }
        r.push_back(job);
    }
    pub fn jobs(&self, outcome: JobOutcome) -> u64 {
        self.jobs[outcome as usize].load(Relaxed)
    }
    /// Jobs ended so far, grouped as the page shows them.
    pub fn chart_totals(&self) -> Totals {
        Totals {
            succeeded: self.jobs(JobOutcome::Succeeded),
            failed: self.jobs(JobOutcome::Failed)
                + self.jobs(JobOutcome::TimedOut)
                + self.jobs(JobOutcome::Rejected),
            handed_back: self.jobs(JobOutcome::HandedBack),
        }
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
    /// [`Counters::requests_per_job`] for a log field (`-` before any job).
    pub fn requests_per_job_text(&self) -> String {
        self.requests_per_job()
            .map_or_else(|| "-".into(), |r| format!("{r:.3}"))
    }
    /// The last [`RECENT_JOBS`] finished jobs, newest first.
    pub fn recent_jobs(&self) -> Vec<RecentJob> {
        self.recent
            .lock()
            .expect("counters lock")
            .iter()
            .rev()
            .cloned()
            .collect()
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
        *self.fleet_line.lock().expect("counters lock") = Some(line);
        *self.fleet_verdict.lock().expect("counters lock") = FleetVerdict {
            protected: Some(protected),
            verdict: verdict.map(|(leave, _)| if leave { "leave" } else { "stay" }),
            reason: verdict.map(|(_, r)| r.to_string()),
        };
    }
    /// What the fleet logic is doing before it decides (e.g. "looking up
    /// group (retrying)"), for the status line and page.
    pub fn set_fleet_note(&self, note: &str) {
        *self.fleet_line.lock().expect("counters lock") = Some(note.to_string());
        *self.fleet_verdict.lock().expect("counters lock") = FleetVerdict {
            protected: None,
            verdict: None,
            reason: Some(note.to_string()),
        };
    }
    pub fn fleet_verdict(&self) -> FleetVerdict {
        self.fleet_verdict.lock().expect("counters lock").clone()
    }
    /// The notice the agent is acting on, for the status line (`None`
    /// clears it).
    pub fn set_notice(&self, notice: Option<String>) {
        *self.notice.lock().expect("counters lock") = notice;
    }
    pub fn notice(&self) -> Option<String> {
        self.notice.lock().expect("counters lock").clone()
    }
    /// Why jobs cannot start, while intake is closed for it (`None`
    /// clears it).
    pub fn set_start_problem(&self, why: Option<String>) {
        *self.start_problem.lock().expect("counters lock") = why;
    }
    pub fn start_problem(&self) -> Option<String> {
        self.start_problem.lock().expect("counters lock").clone()
    }
    /// The target lifecycle state last read from instance metadata.
    pub fn set_lifecycle_state(&self, state: String) {
        *self.lifecycle_state.lock().expect("counters lock") = Some(state);
    }
    pub fn lifecycle_state(&self) -> Option<String> {
        self.lifecycle_state.lock().expect("counters lock").clone()
    }
    pub fn set_slots(&self, n: usize) {
        self.slots.store(n as u64, Relaxed);
    }
    pub fn slots(&self) -> u64 {
        self.slots.load(Relaxed)
    }
    /// The queue answered (at start, and the last receive).
    pub fn set_queue_ok(&self, ok: bool) {
        self.queue_ok.store(ok, Relaxed);
    }
    pub fn queue_ok(&self) -> bool {
        self.queue_ok.load(Relaxed)
    }
    /// Job-state tracking's write counts, once `[tracking]` is on.
    pub fn set_tracking(&self, t: Arc<crate::tracking::RecorderStats>) {
        // Set once: the agent starts once per process.
        let _ = self.tracking.set(t);
    }
    pub fn tracking(&self) -> Option<&crate::tracking::RecorderStats> {
        self.tracking.get().map(|t| &**t)
    }

    /// The supervisor loop is alive (called every second from it). Also
    /// where the last hour's minutes are closed: never on a job's path.
    pub fn tick(&self) {
        let now = SystemTime::now();
        let ms = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        self.loop_tick
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Relaxed);
        self.history.sample(now, self.chart_totals());
    }
    pub fn last_tick(&self) -> Option<SystemTime> {
        match self.loop_tick.load(Relaxed) {
            0 => None,
            ms => Some(SystemTime::UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }

    /// The one-line summary for systemd's STATUS= and the log.
    pub fn summary(&self, load: &Load) -> String {
        let t = self.chart_totals();
        let mut s = format!(
            "{}{}/{} jobs · {} done · {} failed · {} handed back",
            if load.draining { "draining · " } else { "" },
            load.running,
            self.slots(),
            t.succeeded,
            t.failed,
            t.handed_back,
        );
        if let Some(n) = self.notice.lock().expect("counters lock").as_deref() {
            s.push_str(" · ");
            s.push_str(n);
        }
        if load.cannot_start {
            s.push_str(" · jobs cannot start");
            if let Some(why) = self.start_problem() {
                s.push_str(": ");
                s.push_str(&why);
            }
        }
        if let Some(t) = load.idle_since {
            let idle = SystemTime::now().duration_since(t).unwrap_or_default();
            s.push_str(&format!(" · idle {}s", idle.as_secs()));
        }
        if let Some(f) = self.fleet_line.lock().expect("counters lock").as_deref() {
            s.push_str(" · ");
            s.push_str(f);
        }
        s
    }
}
