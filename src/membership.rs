//! This instance's place in its Auto Scaling group, carried out: scale-in
//! protection while busy, and leaving the group when [`crate::leave::decide`]
//! says so.
//!
//! Leaving is ordered so no message can be lost or stranded: pause intake →
//! wait for the receive in flight and every held message to settle → drop
//! protection → TerminateInstanceInAutoScalingGroup with decrement → tell the
//! agent (STOPPING) → optionally power off. Any failure resumes work. Auto
//! Scaling calls are debounced and never block jobs; `dry_run` makes none.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

use crate::agent::Control;
use crate::config::FleetConfig;
use crate::fleet::{Fleet, GroupSize};
use crate::leave::{self, Billing, Inputs, Rules, Verdict};
use crate::queue::Queue;
use crate::stats::Stats;

/// Group figures are re-read every this many checks (10 min at the default
/// 30 s), and always right before leaving.
const GROUP_REFRESH_CHECKS: u32 = 20;

pub struct Membership {
    pub fleet: Arc<Fleet>,
    pub queue: Arc<Queue>,
    pub stats: Arc<Stats>,
    pub cfg: FleetConfig,
    pub launch_time: SystemTime,
    /// The longest a receive can take (long poll + slack).
    pub receive_bound: Duration,
    pub pause: watch::Sender<bool>,
    pub control: mpsc::Sender<Control>,
    /// The status page's leave button.
    pub leave_requests: mpsc::Receiver<()>,
}

fn rules(cfg: &FleetConfig) -> Rules {
    Rules {
        billing: cfg.billing,
        idle_timeout: cfg.idle_timeout.0,
        min_lifetime: cfg.min_lifetime.0,
        backlog_per_instance: cfg.backlog_per_instance,
        hourly_window: cfg.hourly_window.0,
    }
}

impl Membership {
    fn inputs(&self, backlog: u64, group: GroupSize) -> Inputs {
        let s = &self.stats;
        Inputs {
            now: SystemTime::now(),
            launch_time: self.launch_time,
            idle_since: s.idle_since(),
            jobs_running: s.running.load(Relaxed) as usize,
            messages_in_flight: s.held() as usize,
            backlog,
            in_service: group.in_service,
            desired: group.desired,
            min: group.min,
            draining: s.draining.load(SeqCst),
        }
    }

    /// Runs until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        let rules = rules(&self.cfg);
        let mut protected = false;
        let mut protection_retry_at: Option<Instant> = None;
        let mut group: Option<(GroupSize, Instant)> = None;
        let mut last_reason = String::new();
        // Closed when no status page holds the sending end: then never
        // polled again (a closed channel answers at once, every time).
        let mut requests_open = true;
        loop {
            let mut requested = false;
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.stats.busy.notified() => {}
                () = sleep(self.cfg.check_interval.0) => {}
                r = self.leave_requests.recv(), if requests_open => match r {
                    Some(()) => requested = true,
                    None => {
                        requests_open = false;
                        continue;
                    }
                },
            }
            if requested {
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
                let idle_for = self
                    .stats
                    .idle_since()
                    .map(|t| SystemTime::now().duration_since(t).unwrap_or_default());
                let busy = self.stats.running.load(Relaxed) > 0 || self.stats.held() > 0;
                let want = busy || idle_for.is_some_and(|d| d < self.cfg.protection_linger.0);
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
                self.stats.set_fleet(None, protected);
                continue;
            }
            // The decision, first on cached group figures and no backlog
            // (cheap: no request); only a would-leave is checked afresh.
            let size = match group {
                Some((g, at))
                    if at.elapsed() < self.cfg.check_interval.0 * GROUP_REFRESH_CHECKS =>
                {
                    g
                }
                _ => match self.fleet.size().await {
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
                verdict = match (self.queue.backlog().await, self.fleet.size().await) {
                    (Ok(backlog), Ok(fresh)) => {
                        group = Some((fresh, Instant::now()));
                        leave::decide(&self.inputs(backlog, fresh), &rules)
                    }
                    (Err(e), _) => Verdict::Stay(format!("cannot read the queue backlog: {e}")),
                    (_, Err(e)) => Verdict::Stay(format!("cannot read the group: {e}")),
                };
            }
            self.stats
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
                    let _ = self
                        .control
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
                    self.pause.send_replace(false);
                }
            }
        }
    }

    /// The leave button: stop taking work, let running jobs finish, then
    /// leave as the fleet logic would. `true` once left; on any failure
    /// work resumes.
    async fn leave_on_request(&self, protected: &mut bool, stop: &CancellationToken) -> bool {
        tracing::warn!(
            running = self.stats.running.load(Relaxed),
            dry_run = self.cfg.dry_run,
            "leave requested on the status page: no new work; running jobs finish first"
        );
        if self.cfg.dry_run {
            tracing::info!("dry run: would pause intake, wait for running jobs, drop scale-in protection and TerminateInstanceInAutoScalingGroup (decrement)");
            return false;
        }
        self.pause.send_replace(true);
        self.stats
            .set_notice("leave requested: finishing running jobs".into());
        while self.stats.running.load(Relaxed) > 0 {
            tokio::select! {
                () = stop.cancelled() => return false,
                () = sleep(Duration::from_millis(200)) => {}
            }
        }
        match self.leave(protected).await {
            Ok(()) => {
                let _ = self
                    .control
                    .send(Control::Left(
                        "left the group: requested on the status page".into(),
                    ))
                    .await;
                true
            }
            Err(why) => {
                tracing::warn!(reason = %why, "leave requested on the status page failed; receiving again");
                *self.stats.notice.lock().expect("stats lock") = None;
                self.pause.send_replace(false);
                false
            }
        }
    }

    async fn protect(&self, on: bool) -> Result<(), crate::fleet::FleetError> {
        if self.cfg.dry_run {
            tracing::info!(on, "dry run: would SetInstanceProtection");
            return Ok(());
        }
        self.fleet.set_protection(on).await?;
        tracing::info!(on, "scale-in protection changed");
        Ok(())
    }

    /// The ordered leave. `Err` says why it was abandoned (work resumes).
    async fn leave(&self, protected: &mut bool) -> Result<(), String> {
        self.pause.send_replace(true);
        let until = Instant::now() + self.receive_bound;
        while self.stats.receiving.load(SeqCst) || self.stats.held() > 0 {
            if Instant::now() > until {
                return Err("messages still in flight".into());
            }
            sleep(Duration::from_millis(100)).await;
        }
        if self.stats.running.load(Relaxed) > 0 || self.stats.held() > 0 {
            return Err("work arrived".into());
        }
        if *protected {
            self.fleet
                .set_protection(false)
                .await
                .map_err(|e| e.to_string())?;
            *protected = false;
        }
        match self.fleet.terminate_with_decrement().await {
            Ok(()) => {
                tracing::warn!(
                    group = self.fleet.group.as_deref().unwrap_or("-"),
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
    async fn wait_for_the_end(&self, stop: CancellationToken) {
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
