//! Intake as the supervisor holds it: the receiver task with the job tasks
//! it starts, opened at start and opened again when a drain for a notice
//! ends; and where the drain is ([`DrainState`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::control::Tasks;
use crate::decide::notice::DrainCause;
use crate::drain::occupancy::Occupancy;
use crate::drain::queue::Queue;
use crate::drain::receiver::Receiver;
use crate::drain::runner::JobContext;
use crate::drain::slots::Slots;
use crate::system::clock::Later;

/// Intake and the jobs it starts. Cancelling `token` closes intake;
/// `stop_jobs` stops every running job; `jobs` tracks them all, across
/// openings (a drain for a notice that ends while jobs still run).
pub(super) struct Intake {
    pub token: CancellationToken,
    pub stop_jobs: CancellationToken,
    pub jobs: TaskTracker,
    pub receiver: JoinHandle<()>,
    /// The receiver has returned (intake closed, or it failed).
    pub receiver_done: bool,
}

/// What opening intake needs.
pub(super) struct Opener {
    pub tasks: Tasks,
    pub queue: Arc<dyn Queue>,
    pub slots: Arc<Slots>,
    pub ctx: Arc<JobContext>,
    pub occupancy: Arc<Occupancy>,
    /// Reset to `None` when intake opens again.
    pub kill_by: watch::Sender<Option<Instant>>,
}

impl Opener {
    /// Opens intake the first time.
    pub(super) fn open(&self) -> Intake {
        self.start(self.tasks.child(), TaskTracker::new())
    }

    /// Opens intake again after a drain for a notice that ended. The
    /// receiver of the last opening finishes on its own (its intake is
    /// closed: it hands back whatever its last receive brings); jobs still
    /// running go on, and are still waited for and stopped.
    pub(super) fn reopen(&self, old: Intake) -> Intake {
        let stop_jobs = if old.stop_jobs.is_cancelled() {
            self.tasks.child()
        } else {
            old.stop_jobs
        };
        old.jobs.reopen();
        self.start(stop_jobs, old.jobs)
    }

    fn start(&self, stop_jobs: CancellationToken, jobs: TaskTracker) -> Intake {
        self.occupancy.open_intake();
        self.kill_by.send_replace(None);
        let token = self.tasks.child();
        let receiver = self.tasks.start(
            Receiver {
                queue: self.queue.clone(),
                slots: self.slots.clone(),
                ctx: self.ctx.clone(),
                jobs: jobs.clone(),
                stop_jobs: stop_jobs.clone(),
            },
            token.clone(),
        );
        Intake {
            token,
            stop_jobs,
            jobs,
            receiver,
            receiver_done: false,
        }
    }
}

/// Where the drain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Intake open.
    Running,
    /// Intake closed; running jobs finish or are stopped at `stop_at`.
    Draining,
    /// Intake closed and every job ended.
    Drained,
}

#[derive(Debug)]
pub(super) struct DrainState {
    pub phase: Phase,
    /// Exit once drained (SIGTERM, or the receiver failed), rather than
    /// stay up idle.
    pub exit: bool,
    /// The instance left its group: it stays drained.
    pub left: bool,
    /// The notice the drain is for (the first one), which decides how it
    /// ends; `None` for a shutdown or leaving.
    pub cause: Option<DrainCause>,
    /// When running jobs are stopped (the earliest asked for).
    pub stop_at: Option<Instant>,
    /// The receiver ended abnormally.
    pub failed: bool,
}

impl DrainState {
    pub(super) fn new() -> DrainState {
        DrainState {
            phase: Phase::Running,
            exit: false,
            left: false,
            cause: None,
            stop_at: None,
            failed: false,
        }
    }

    /// Closes intake (once) and moves the stop deadline earlier if asked.
    pub(super) fn close_intake(
        &mut self,
        intake: &Intake,
        occupancy: &Occupancy,
        stop_in: Option<Duration>,
    ) {
        if self.phase == Phase::Running {
            self.phase = Phase::Draining;
        }
        occupancy.close_intake();
        intake.token.cancel();
        if let Some(d) = stop_in {
            let at = Some(Instant::now().later(d));
            self.stop_at = match (self.stop_at, at) {
                (Some(s), Some(a)) => Some(s.min(a)),
                (s, a) => s.or(a),
            };
        }
    }

    /// Whether a drain for a notice may end by taking work again: not
    /// when exiting, after leaving the group, or for the group's own
    /// termination (the hook waits for it).
    pub(super) fn may_resume(&self, hook_idle: bool) -> bool {
        self.phase != Phase::Running && !self.exit && !self.left && hook_idle
    }

    /// Intake opened again.
    pub(super) fn resumed(&mut self) {
        self.phase = Phase::Running;
        self.cause = None;
        self.stop_at = None;
    }
}
