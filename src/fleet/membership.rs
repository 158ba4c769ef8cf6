//! This instance's place in its Auto Scaling group, carried out: scale-in
//! protection while busy ([`crate::decide::protection`]), leaving the group
//! when [`crate::decide::leave`] says so, and the status page's spawn and
//! leave buttons ([`Request`]).
//!
//! Leaving is ordered so no message can be lost or stranded: pause intake →
//! wait for the receive in flight and every held message to settle (the
//! drain's [`Occupancy`], never the display counters) → drop protection →
//! TerminateInstanceInAutoScalingGroup with decrement → tell the supervisor
//! → optionally power off. Any failure resumes work. Auto Scaling calls are
//! debounced and never block jobs; `dry_run` makes none.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

pub use super::buttons::{Refusal, Request};
use crate::aws::autoscaling::{AutoScaling, AutoScalingError, GroupSize};
use crate::aws::sqs::Sqs;
use crate::config::FleetConfig;
use crate::control::{Control, Inbox, Task};
use crate::decide::backoff::error_backoff;
use crate::decide::leave::{self, Billing, Inputs, Verdict};
use crate::decide::protection;
use crate::drain::occupancy::{Load, Occupancy};
use crate::status::counters::Counters;

const LOOKING_UP: &str = "still looking up this instance's Auto Scaling group; try again shortly";

/// Group figures are re-read every this many checks (10 min at the default
/// 30 s), and always right before leaving.
const GROUP_REFRESH_CHECKS: u32 = 20;

/// How long group figures are reused: `GROUP_REFRESH_CHECKS` checks
/// (saturating: a check interval can be long).
pub fn group_refresh(check_interval: Duration) -> Duration {
    check_interval.saturating_mul(GROUP_REFRESH_CHECKS)
}

/// The fleet task.
pub struct Membership {
    pub asg: Arc<AutoScaling>,
    pub queue: Arc<Sqs>,
    pub counters: Arc<Counters>,
    pub occupancy: Arc<Occupancy>,
    pub cfg: FleetConfig,
    pub launch_time: SystemTime,
    /// The longest a receive can take (long poll + slack).
    pub receive_bound: Duration,
    pub inbox: Inbox,
    /// The status page's buttons.
    pub requests: mpsc::Receiver<Request>,
}

impl Task for Membership {
    const NAME: &'static str = "fleet";

    async fn run(self, stop: CancellationToken) {
        self.run_until(stop).await;
    }
}

impl Membership {
    fn inputs(&self, backlog: u64, group: GroupSize) -> Inputs {
        let l: Load = self.occupancy.now();
        Inputs {
            now: SystemTime::now(),
            launch_time: self.launch_time,
            idle_since: l.idle_since,
            jobs_running: l.running,
            messages_in_flight: l.held,
            backlog,
            in_service: group.in_service,
            desired: group.desired,
            min: group.min,
            draining: l.draining,
        }
    }

    /// Looks up this instance's group, retrying with backoff until Auto
    /// Scaling answers: one throttled or lost call at boot must not switch
    /// the fleet logic off for the instance's whole life (busy instances
    /// unprotected, idle ones never leaving). `false` when the instance is
    /// in no group, or stopped first.
    async fn join(&mut self, stop: &CancellationToken) -> bool {
        let mut failures: u32 = 0;
        // Closed when no status page holds the sending end.
        let mut requests_open = true;
        loop {
            match self.asg.look_up_group().await {
                Ok(Some(group)) => {
                    if failures > 0 {
                        tracing::info!(failures, "Auto Scaling answers again");
                    }
                    tracing::info!(group = %group, instance_id = %self.asg.instance_id, "member of Auto Scaling group");
                    tracing::info!(billing = ?self.cfg.billing, idle_timeout = %self.cfg.idle_timeout, dry_run = self.cfg.dry_run, "fleet logic on: protection while busy, leaving the group when work is scarce");
                    self.counters.set_fleet_note("group found");
                    return true;
                }
                Ok(None) => {
                    tracing::info!(instance_id = %self.asg.instance_id, "not in an Auto Scaling group");
                    tracing::info!("fleet logic off: not a known Auto Scaling group member; drainerd never terminates this instance");
                    self.counters.set_fleet_note("not in an Auto Scaling group");
                    return false;
                }
                Err(e) => {
                    failures += 1;
                    let wait = error_backoff(
                        failures,
                        Duration::from_secs(1),
                        Duration::from_secs(60),
                        fastrand::f64(),
                    );
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(error = %e, failures, retry_in = ?wait, "could not look up this instance's Auto Scaling group; retrying (no protection or leaving until it answers)");
                    }
                    self.counters.set_fleet_note("looking up group (retrying)");
                    let until = Instant::now() + wait;
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => return false,
                            () = tokio::time::sleep_until(until) => break,
                            r = self.requests.recv(), if requests_open => match r {
                                Some(Request::Spawn(reply)) => {
                                    let _ = reply.send(Err(Refusal::Conflict(LOOKING_UP.into())));
                                }
                                Some(Request::Leave(reply)) => {
                                    let _ = reply.send(Err(Refusal::Conflict(LOOKING_UP.into())));
                                }
                                Some(Request::LeaveDrained(reply)) => {
                                    let _ = reply.send(Err(LOOKING_UP.into()));
                                }
                                None => requests_open = false,
                            },
                        }
                    }
                }
            }
        }
    }

    async fn run_until(mut self, stop: CancellationToken) {
        if !self.join(&stop).await {
            return;
        }
        let rules = self.cfg.leave_rules();
        let mut protected = false;
        let mut protection_retry_at: Option<Instant> = None;
        let mut group: Option<(GroupSize, Instant)> = None;
        let mut last_reason = String::new();
        // Closed when no status page holds the sending end: then never
        // polled again (a closed channel answers at once, every time).
        let mut requests_open = true;
        loop {
            let mut leave_requested = false;
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.occupancy.busy() => {}
                () = sleep(self.cfg.check_interval.0) => {}
                r = self.requests.recv(), if requests_open => match r {
                    Some(Request::Spawn(reply)) => {
                        let _ = reply.send(self.spawn().await);
                        continue;
                    }
                    Some(Request::Leave(reply)) => {
                        let answer = self.accept_leave().await;
                        leave_requested = answer.is_ok();
                        let _ = reply.send(answer);
                        if !leave_requested {
                            continue;
                        }
                    }
                    Some(Request::LeaveDrained(reply)) => {
                        if self.leave_drained(&mut protected, reply).await {
                            self.wait_for_the_end(stop).await;
                            return;
                        }
                        group = None;
                        continue;
                    }
                    None => {
                        requests_open = false;
                        continue;
                    }
                },
            }
            if leave_requested {
                if self.leave_on_request(&mut protected, &stop).await {
                    self.wait_for_the_end(stop).await;
                    return;
                }
                group = None;
                continue;
            }
            // Scale-in protection: on while busy, off after the linger.
            if self.cfg.protect_while_busy
                && protection_retry_at.is_none_or(|t| Instant::now() >= t)
            {
                let l = self.occupancy.now();
                let idle_for = l
                    .idle_since
                    .map(|t| SystemTime::now().duration_since(t).unwrap_or_default());
                let want =
                    protection::wanted(l.running, l.held, idle_for, self.cfg.protection_linger.0);
                if want != protected {
                    match self.protect(want).await {
                        Ok(()) => {
                            protected = want;
                            protection_retry_at = None;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "scale-in protection change failed; jobs go on, retrying in 30s");
                            protection_retry_at = Some(Instant::now() + Duration::from_secs(30));
                        }
                    }
                }
            }
            if rules.billing == Billing::Never {
                self.counters.set_fleet(None, protected);
                continue;
            }
            // The decision, first on cached group figures and no backlog
            // (cheap: no request); only a would-leave is checked afresh.
            let size = match group {
                Some((g, at)) if at.elapsed() < group_refresh(self.cfg.check_interval.0) => g,
                _ => match self.asg.size().await {
                    Ok(g) => {
                        group = Some((g, Instant::now()));
                        g
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the group; staying");
                        continue;
                    }
                },
            };
            let mut verdict = leave::decide(&self.inputs(0, size), &rules);
            if verdict.leaves() {
                verdict = match (self.queue.backlog().await, self.asg.size().await) {
                    (Ok(backlog), Ok(fresh)) => {
                        group = Some((fresh, Instant::now()));
                        leave::decide(&self.inputs(backlog, fresh), &rules)
                    }
                    (Err(e), _) => Verdict::Stay(format!("cannot read the queue backlog: {e}")),
                    (_, Err(e)) => Verdict::Stay(format!("cannot read the group: {e}")),
                };
            }
            self.counters
                .set_fleet(Some((verdict.leaves(), verdict.reason())), protected);
            // Log when the kind of verdict changes, not every tick of its clock.
            let shape: String = verdict
                .reason()
                .chars()
                .filter(|c| !c.is_ascii_digit())
                .collect();
            let changed = shape != last_reason;
            if changed {
                tracing::info!(
                    leave = verdict.leaves(),
                    reason = verdict.reason(),
                    dry_run = self.cfg.dry_run,
                    "fleet decision"
                );
                last_reason = shape;
            }
            if !verdict.leaves() {
                continue;
            }
            if self.cfg.dry_run {
                if changed {
                    tracing::info!(reason = verdict.reason(), "dry run: would pause intake, drop scale-in protection and TerminateInstanceInAutoScalingGroup (decrement)");
                }
                continue;
            }
            match self.leave(&mut protected).await {
                Ok(()) => {
                    self.inbox
                        .send(Control::Left(format!(
                            "left the group: {}",
                            verdict.reason()
                        )))
                        .await;
                    self.wait_for_the_end(stop).await;
                    return;
                }
                Err(why) => {
                    tracing::warn!(reason = %why, "not leaving after all; receiving again");
                    group = None;
                    self.occupancy.pause(false);
                }
            }
        }
    }

    async fn protect(&self, on: bool) -> Result<(), AutoScalingError> {
        if self.cfg.dry_run {
            tracing::info!(on, "dry run: would SetInstanceProtection");
            return Ok(());
        }
        self.asg.set_protection(on).await?;
        tracing::info!(on, "scale-in protection changed");
        Ok(())
    }

    /// The ordered leave. `Err` says why it was abandoned (work resumes).
    pub(super) async fn leave(&self, protected: &mut bool) -> Result<(), String> {
        self.occupancy.pause(true);
        let settled = tokio::time::timeout(
            self.receive_bound,
            self.occupancy.wait_until(Load::empty_handed),
        )
        .await;
        if settled.is_err() {
            return Err("messages still in flight".into());
        }
        let l = self.occupancy.now();
        if l.running > 0 || l.held > 0 {
            return Err("work arrived".into());
        }
        if *protected {
            self.asg
                .set_protection(false)
                .await
                .map_err(|e| e.to_string())?;
            *protected = false;
        }
        match self.asg.terminate_with_decrement().await {
            Ok(()) => {
                tracing::warn!(
                    group = self.asg.group().unwrap_or("-"),
                    "TerminateInstanceInAutoScalingGroup accepted (desired capacity decremented)"
                );
                Ok(())
            }
            Err(e) if e.min_size() => Err(format!("the group is at MinSize (AWS: {})", e.detail)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// After leaving: the platform stops the instance; power off if it
    /// does not within `poweroff_after`.
    pub(super) async fn wait_for_the_end(&self, stop: CancellationToken) {
        let Some(after) = self.cfg.poweroff_after else {
            return;
        };
        tokio::select! {
            () = stop.cancelled() => {}
            () = sleep(after.0) => {
                tracing::warn!(after = %after, "the instance is still running after leaving its group; powering off through systemd");
                match tokio::process::Command::new("systemctl").arg("poweroff").status().await {
                    Ok(s) if s.success() => {}
                    Ok(s) => tracing::error!(status = %s, "systemctl poweroff failed (see README: it needs polkit or sudo rights)"),
                    Err(e) => tracing::error!(error = %e, "cannot run systemctl poweroff"),
                }
            }
        }
    }
}
