//! What a job's end means for its message (README, "The job contract"):
//! exit 0 deletes, whenever it comes (also in the kill grace after a
//! SIGTERM); a failure, a timeout or a message that cannot be run (too
//! large) spends one of the message's receives: it comes back after a
//! backoff by receive count, and the queue's redrive policy dead-letters
//! it after `maxReceiveCount`. An end that is not the job's doing — the
//! command could not start (the agent's fault), or the instance stopped
//! the job (shutdown, spot, rebalance, lifecycle, leaving) — is handed
//! back without spending the job's budget.

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
    /// Could not be started: the agent's fault (a missing command, a
    /// deleted working directory, no file descriptors, ...), with why.
    SpawnFailed(String),
    /// Not run because of the message itself (too large), with why.
    Rejected(String),
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
            Exit::SpawnFailed(e) => format!("could not start: {e}"),
            Exit::Rejected(e) => format!("not run: {e}"),
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
    /// Stopped by the instance (shutdown, interruption, leaving): handed
    /// back at once, its budget untouched.
    HandedBack,
    /// Not run because of the message (too large): handed back with backoff.
    Rejected,
    /// The command could not start (the agent's fault): handed back at
    /// once, its budget untouched.
    NotStarted,
}

impl JobOutcome {
    pub const ALL: [JobOutcome; 6] = [
        JobOutcome::Succeeded,
        JobOutcome::Failed,
        JobOutcome::TimedOut,
        JobOutcome::HandedBack,
        JobOutcome::Rejected,
        JobOutcome::NotStarted,
    ];
    pub fn name(self) -> &'static str {
        match self {
            JobOutcome::Succeeded => "succeeded",
            JobOutcome::Failed => "failed",
            JobOutcome::TimedOut => "timed_out",
            JobOutcome::HandedBack => "handed_back",
            JobOutcome::Rejected => "rejected",
            JobOutcome::NotStarted => "not_started",
        }
    }
}

/// What to do with a finished message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Delete,
    /// Make visible again after this long (0 = at once). The next receive
    /// counts towards the queue's `maxReceiveCount`.
    Release(Duration),
    /// Hand back for another worker at once without spending a receive of
    /// the job's budget: a copy is sent (counting the interruption) and the
    /// original deleted once the copy is accepted ([`hand_back`] says when
    /// that is not possible and it falls back to `Release(0)`).
    HandBack,
}

impl Action {
    /// "delete", "visible again in 20s" or "handed back", for the log.
    pub fn describe(self) -> String {
        match self {
            Action::Delete => "delete".into(),
            Action::Release(v) => format!("visible again in {}s", v.as_secs()),
            Action::HandBack => "handed back (its receive budget untouched)".into(),
        }
    }
}

/// How an instance-caused hand-back is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandBackBy {
    /// Send a copy (same body and attributes, the interruption counted),
    /// then delete the original.
    Copy,
    /// Make the original visible at once: the next receive counts towards
    /// `maxReceiveCount` (why, for the log).
    Release(&'static str),
}

/// Start failures in a row after which an instance stops taking work: a
/// broken box (missing command, deleted working directory, no file
/// descriptors) would otherwise be the fastest consumer of the fleet,
/// bouncing every message it receives.
pub const START_FAILURES_TO_CLOSE: u32 = 3;

/// Whether `in_a_row` start failures close intake.
pub fn close_intake_after(in_a_row: u32) -> bool {
    in_a_row >= START_FAILURES_TO_CLOSE
}

/// SQS allows this many message attributes.
pub const MAX_ATTRIBUTES: usize = 10;

/// Whether a hand-back can be a copy: not on a FIFO queue (a copy would go
/// to the tail of its message group, after messages meant to run after
/// it), not when the message already has 10 attributes and none of them
/// is the interruption counter (no room to add it), not once SQS refused
/// SendMessage (the queue policy or the role does not allow it).
pub fn hand_back(
    fifo: bool,
    attributes: usize,
    has_counter: bool,
    copies_allowed: bool,
) -> HandBackBy {
    if fifo {
        HandBackBy::Release(
            "a FIFO queue keeps a message's place in its group only if it is not copied",
        )
    } else if !copies_allowed {
        HandBackBy::Release("SendMessage is not allowed on this queue")
    } else if attributes >= MAX_ATTRIBUTES && !has_counter {
        HandBackBy::Release("the message already has 10 attributes (SQS's limit)")
    } else {
        HandBackBy::Copy
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
        Exit::Rejected(_) => (later(), JobOutcome::Rejected),
        Exit::SpawnFailed(_) => (Action::HandBack, JobOutcome::NotStarted),
        Exit::Stopped => (Action::HandBack, JobOutcome::HandedBack),
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
            (Action::HandBack, JobOutcome::HandedBack)
        );
    }

    #[test]
    fn agent_faults_and_interruptions_spend_no_receive() {
        let c = Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        for exit in [Exit::Stopped, Exit::SpawnFailed("no such file".into())] {
            assert_eq!(decide(&exit, 1, c).0, Action::HandBack, "{exit:?}");
        }
        assert_eq!(
            decide(&Exit::Rejected("too large".into()), 1, c),
            (
                Action::Release(Duration::from_secs(10)),
                JobOutcome::Rejected
            ),
            "a message that cannot run is the message's fault"
        );
    }

    #[test]
    fn a_hand_back_is_a_copy_unless_it_cannot_be() {
        assert_eq!(hand_back(false, 3, false, true), HandBackBy::Copy);
        assert_eq!(
            hand_back(false, 10, true, true),
            HandBackBy::Copy,
            "the counter is replaced"
        );
        assert!(matches!(
            hand_back(false, 10, false, true),
            HandBackBy::Release(_)
        ));
        assert!(matches!(
            hand_back(true, 0, false, true),
            HandBackBy::Release(_)
        ));
        assert!(matches!(
            hand_back(false, 0, false, false),
            HandBackBy::Release(_)
        ));
    }
}
