//! What the agent does about instance metadata notices beyond draining:
//! logging each one as an operator reads it, and the terminate lifecycle
//! hook (heartbeats while jobs finish, CONTINUE once every message is
//! settled).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

use crate::aws::autoscaling::AutoScaling;
use crate::config::Config;
use crate::control::{Task, Tasks};
use crate::decide::notice::{Event, Reaction};
use crate::drain::occupancy::Occupancy;
use crate::status::counters::Counters;

pub(super) fn log_notice(event: &Event, reaction: &Reaction, counters: &Counters) {
    match (event, reaction) {
        (_, Reaction::Ignore) => {
            tracing::debug!(?event, "instance metadata notice ignored (configured)")
        }
        (Event::Spot(n), _) => {
            tracing::warn!(action = n.action.name(), time = %humantime::format_rfc3339_seconds(n.time), "spot interruption notice")
        }
        (Event::SpotWithdrawn, _) => tracing::info!(
            "spot interruption notice withdrawn; drainerd stays drained until restarted"
        ),
        (Event::Rebalance(t), Reaction::Report) => {
            counters.set_notice(Some("rebalance recommended".into()));
            tracing::info!(notice_time = %humantime::format_rfc3339_seconds(*t), "rebalance recommendation (metadata.rebalance = log: keep working)");
        }
        (Event::Rebalance(_), _) => tracing::warn!("rebalance recommendation"),
        (Event::RebalanceWithdrawn, _) => tracing::info!("rebalance recommendation withdrawn"),
        (Event::Lifecycle(from, to), _) => {
            let what = match to.as_str() {
                "InService" => "normal service",
                "Terminated" => "terminating: drain, then complete the lifecycle hook",
                "Standby" | "Detached" => "still draining the queue (the instance keeps running)",
                _ => "warm pool: logged only; do not start drainerd on warm-pool instances before InService",
            };
            if to != "InService" {
                counters.set_notice(Some(format!("lifecycle {to}")));
            }
            tracing::info!(from = from.as_deref().unwrap_or("-"), to = %to, meaning = what, "target lifecycle state changed");
        }
        (Event::Maintenance(m), _) => {
            let nb = m
                .not_before
                .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                .unwrap_or_default();
            counters.set_notice(Some(format!("maintenance {} not before {nb}", m.code)));
            tracing::warn!(event_id = %m.id, code = %m.code, not_before = %nb, state = %m.state, description = %m.description, "scheduled maintenance event");
        }
        (Event::MaintenanceWithdrawn(id), _) => {
            tracing::info!(event_id = %id, "scheduled maintenance event withdrawn")
        }
        (Event::MaintenanceDue(m), _) => {
            tracing::warn!(event_id = %m.id, "scheduled maintenance is near")
        }
    }
}

/// The terminate lifecycle hook: heartbeats while the drain runs, then
/// CONTINUE once, when drained.
#[derive(Debug, Default)]
pub(super) enum Hook {
    /// No terminate notice yet.
    #[default]
    Idle,
    /// Draining for a terminate notice; heartbeats run until the token is
    /// cancelled (`None`: no hook configured, or no group known).
    Waiting(Option<CancellationToken>),
    Completed,
}

impl Hook {
    /// No terminate notice has come.
    pub(super) fn is_idle(&self) -> bool {
        matches!(self, Hook::Idle)
    }

    /// A terminate notice: start heartbeating the hook (once).
    pub(super) fn begin(&mut self, asg: Option<Arc<AutoScaling>>, cfg: &Config, tasks: &Tasks) {
        if matches!(self, Hook::Idle) {
            *self = Hook::Waiting(start_heartbeats(asg, cfg, tasks));
        }
    }

    /// Drained: complete the hook (once, and only after a terminate
    /// notice) — from a task of its own, once every message is settled,
    /// so the supervisor never waits on Auto Scaling.
    pub(super) fn complete(
        &mut self,
        asg: &Option<Arc<AutoScaling>>,
        cfg: &Config,
        occupancy: &Arc<Occupancy>,
        tasks: &Tasks,
    ) {
        let beats = match std::mem::take(self) {
            Hook::Waiting(beats) => beats,
            other => {
                *self = other;
                return;
            }
        };
        *self = Hook::Completed;
        let (Some(hook), Some(asg)) = (
            cfg.fleet.lifecycle_hook.clone(),
            asg.clone().filter(|a| a.group().is_some()),
        ) else {
            if let Some(b) = beats {
                b.cancel();
            }
            return;
        };
        tasks.start_until_exit(HookCompletion {
            asg,
            hook,
            occupancy: occupancy.clone(),
            beats,
        });
    }
}

/// CompleteLifecycleAction (CONTINUE) once every message is settled:
/// deleted or handed back and acknowledged by SQS (or given up by the
/// settler, in which case SQS makes it visible again), so the group
/// terminates the instance only when nothing is left in its hands.
struct HookCompletion {
    asg: Arc<AutoScaling>,
    hook: String,
    occupancy: Arc<Occupancy>,
    /// The hook's heartbeats, stopped once it is completed.
    beats: Option<CancellationToken>,
}

impl Task for HookCompletion {
    const NAME: &'static str = "lifecycle hook completion";

    /// Runs to its end even when stopped (at exit the settler's flush is
    /// what it waits for); every wait and call in it is bounded.
    async fn run(self, _stop: CancellationToken) {
        self.occupancy
            .wait_until(|l| l.held == 0 && l.running == 0)
            .await;
        if let Some(b) = &self.beats {
            b.cancel();
        }
        match self.asg.complete_lifecycle(&self.hook).await {
            Ok(()) => tracing::info!(
                hook = %self.hook,
                "every message settled; lifecycle action completed (CONTINUE): the group may terminate this instance"
            ),
            Err(e) => {
                tracing::error!(error = %e, "could not complete the lifecycle action; the hook's timeout will end it")
            }
        }
    }
}

/// RecordLifecycleActionHeartbeat every interval until stopped.
struct HookHeartbeats {
    asg: Arc<AutoScaling>,
    hook: String,
    interval: Duration,
}

impl Task for HookHeartbeats {
    const NAME: &'static str = "lifecycle hook heartbeats";

    async fn run(self, stop: CancellationToken) {
        loop {
            match self.asg.lifecycle_heartbeat(&self.hook).await {
                Ok(()) => tracing::info!(hook = %self.hook, "lifecycle hook heartbeat sent"),
                Err(e) => {
                    tracing::warn!(error = %e, "lifecycle hook heartbeat failed; retrying next interval")
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = sleep(self.interval) => {}
            }
        }
    }
}

fn start_heartbeats(
    asg: Option<Arc<AutoScaling>>,
    cfg: &Config,
    tasks: &Tasks,
) -> Option<CancellationToken> {
    let Some(hook) = cfg.fleet.lifecycle_hook.clone() else {
        tracing::info!("no fleet.lifecycle_hook configured: draining without lifecycle heartbeats");
        return None;
    };
    let Some(asg) = asg.filter(|a| a.group().is_some()) else {
        tracing::warn!("fleet.lifecycle_hook is set but this instance's Auto Scaling group is unknown: no lifecycle heartbeats");
        return None;
    };
    let stop = tasks.child();
    tasks.start(
        HookHeartbeats {
            asg,
            hook,
            interval: cfg.fleet.lifecycle_heartbeat_interval.0,
        },
        stop.clone(),
    );
    Some(stop)
}
