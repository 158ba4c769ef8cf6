//! The status page's spawn and leave buttons, carried out by the fleet
//! task: the page sends a [`Request`] and shows the answer.

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::membership::Membership;
use crate::control::Control;
use crate::decide::capacity;

/// What the status page's buttons ask of the fleet task.
#[derive(Debug)]
pub enum Request {
    /// Raise the group's desired capacity by one; the answer is the new
    /// desired capacity.
    Spawn(oneshot::Sender<Result<u32, Refusal>>),
    /// Stop taking work, let running jobs finish, then leave the group. The
    /// answer comes once the request is accepted (before the drain).
    Leave(oneshot::Sender<Result<(), Refusal>>),
    /// The supervisor has drained for a notice that will not pass (a
    /// rebalance recommendation): leave the group now. The answer comes
    /// after the attempt: `Err` says why the instance is still a member
    /// (the supervisor then takes work again).
    LeaveDrained(oneshot::Sender<Result<(), String>>),
}

/// Why a button press was not carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The group's size forbids it (MinSize, MaxSize), or the fleet logic
    /// cannot do it now.
    Conflict(String),
    /// Auto Scaling did not answer or refused.
    Unavailable(String),
}

impl Membership {
    /// Leaves the group for a drained supervisor (a rebalance drain), as
    /// the fleet logic would: never below MinSize, never with work in
    /// hand. `true` once left; the answer says so either way.
    pub(super) async fn leave_drained(
        &self,
        protected: &mut bool,
        reply: oneshot::Sender<Result<(), String>>,
    ) -> bool {
        if self.cfg.dry_run {
            tracing::info!("dry run: would leave the group after the rebalance drain");
            let _ = reply.send(Err("fleet.dry_run is on".into()));
            return false;
        }
        let refused = match self.accept_leave().await {
            Ok(()) => None,
            Err(Refusal::Conflict(m) | Refusal::Unavailable(m)) => Some(m),
        };
        let result = match refused {
            Some(m) => Err(m),
            None => self.leave(protected).await,
        };
        match result {
            Ok(()) => {
                self.inbox
                    .send(Control::Left(
                        "left the group: drained for a rebalance recommendation".into(),
                    ))
                    .await;
                let _ = reply.send(Ok(()));
                true
            }
            Err(why) => {
                self.occupancy.pause(false);
                let _ = reply.send(Err(why));
                false
            }
        }
    }

    /// The spawn button: desired capacity +1, never above MaxSize.
    pub(super) async fn spawn(&self) -> Result<u32, Refusal> {
        match self.asg.spawn_one().await {
            Ok(n) => {
                tracing::warn!(
                    desired = n,
                    "status page: spawn pressed; desired capacity raised by one"
                );
                Ok(n)
            }
            Err(e) if e.code.as_deref() == Some("AtMaxSize") => Err(Refusal::Conflict(e.detail)),
            Err(e) => {
                tracing::warn!(error = %e, "status page: spawn failed");
                Err(Refusal::Unavailable(format!("spawn failed: {e}")))
            }
        }
    }

    /// The leave button, first step: refused at MinSize (the group could
    /// not shrink), accepted otherwise.
    pub(super) async fn accept_leave(&self) -> Result<(), Refusal> {
        match self.asg.size().await {
            Ok(g) => capacity::leave_requested(g.desired, g.min).map_err(Refusal::Conflict),
            Err(e) => Err(Refusal::Unavailable(format!("cannot read the group: {e}"))),
        }
    }

    /// The leave button: stop taking work, let running jobs finish, then
    /// leave as the fleet logic would. `true` once left; on any failure
    /// work resumes.
    pub(super) async fn leave_on_request(
        &self,
        protected: &mut bool,
        stop: &CancellationToken,
    ) -> bool {
        tracing::warn!(
            running = self.occupancy.now().running,
            dry_run = self.cfg.dry_run,
            "leave requested on the status page: no new work; running jobs finish first"
        );
        if self.cfg.dry_run {
            tracing::info!("dry run: would pause intake, wait for running jobs, drop scale-in protection and TerminateInstanceInAutoScalingGroup (decrement)");
            return false;
        }
        self.occupancy.pause(true);
        self.counters
            .set_notice(Some("leave requested: finishing running jobs".into()));
        tokio::select! {
            () = stop.cancelled() => return false,
            () = self.occupancy.wait_until(|l| l.running == 0) => {}
        }
        match self.leave(protected).await {
            Ok(()) => {
                self.inbox
                    .send(Control::Left(
                        "left the group: requested on the status page".into(),
                    ))
                    .await;
                true
            }
            Err(why) => {
                tracing::warn!(reason = %why, "leave requested on the status page failed; receiving again");
                self.counters.set_notice(None);
                self.occupancy.pause(false);
                false
            }
        }
    }
}
