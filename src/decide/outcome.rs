//! What a job's end means for its message (README, "The job contract"):
//! exit 0 deletes; any other end hands the message back — with backoff by
//! receive count after a failure, timeout or rejection, at once after a
//! stop by the agent.

use std::time::Duration;

use super::backoff::retry_backoff;

/// How a job's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal (not by drainerd).
    Signal(i32),
    /// Ran past its deadline; drainerd stopped it.
    TimedOut,
    /// drainerd asked it to stop (shutdown, notice); drainerd stopped it.
    Stopped,
    /// Could not be started, or not run at all (with why).
    SpawnFailed(String),
}

impl Exit {
    pub fn success(&self) -> bool {
        *self == Exit::Code(0)
    }

    /// "exit 0", "signal 9", "timed out after 30m", ... for the log and the
    /// status page. `timeout` is the job's configured timeout, as written.
    pub fn describe(&self, timeout: &str) -> String {
        match self {
            Exit::Code(c) => format!("exit {c}"),
            Exit::Signal(s) => format!("signal {s}"),
            Exit::TimedOut => format!("timed out after {timeout}"),
            Exit::Stopped => "stopped by drainerd".into(),
            Exit::SpawnFailed(e) => format!("not run: {e}"),
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

/// What to do with a finished message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Delete,
    /// Make visible again after this long (0 = at once).
    Release(Duration),
}

impl Action {
    /// "delete" or "visible again in 20s", for the log.
    pub fn describe(self) -> String {
        match self {
            Action::Delete => "delete".into(),
            Action::Release(v) => format!("visible again in {}s", v.as_secs()),
        }
    }
}

/// The failure backoff (from `job.retry_backoff_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

/// The fate of a finished message: what to tell SQS and how to count it.
pub fn decide(exit: &Exit, receive_count: u32, backoff: Backoff) -> (Action, JobOutcome) {
    let later = || Action::Release(retry_backoff(receive_count, backoff.base, backoff.max));
    match exit {
        e if e.success() => (Action::Delete, JobOutcome::Succeeded),
        Exit::Code(_) | Exit::Signal(_) => (later(), JobOutcome::Failed),
        Exit::TimedOut => (later(), JobOutcome::TimedOut),
        Exit::SpawnFailed(_) => (later(), JobOutcome::Rejected),
        Exit::Stopped => (Action::Release(Duration::ZERO), JobOutcome::HandedBack),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_contract() {
        let c = Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        assert_eq!(
            decide(&Exit::Code(0), 1, c),
            (Action::Delete, JobOutcome::Succeeded)
        );
        assert_eq!(
            decide(&Exit::Code(3), 2, c),
            (Action::Release(Duration::from_secs(20)), JobOutcome::Failed)
        );
        assert_eq!(decide(&Exit::Signal(9), 1, c).1, JobOutcome::Failed);
        assert_eq!(
            decide(&Exit::TimedOut, 9, c),
            (
                Action::Release(Duration::from_secs(60)),
                JobOutcome::TimedOut
            )
        );
        assert_eq!(
            decide(&Exit::Stopped, 5, c),
            (Action::Release(Duration::ZERO), JobOutcome::HandedBack)
        );
    }
}
