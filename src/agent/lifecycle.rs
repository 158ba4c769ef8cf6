//! What the agent does about instance metadata notices beyond draining:
//! logging each one as an operator reads it, and the terminate lifecycle
//! hook (heartbeats while jobs finish, CONTINUE once every message is
//! settled).

use std::sync::Arc;

use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

use super::DrainState;
use crate::config::Config;
use crate::fleet::Fleet;
use crate::notice::Event;
use crate::policy::Reaction;
use crate::stats::Stats;

pub(super) fn log_notice(event: &Event, reaction: &Reaction, stats: &Stats) {
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
            stats.set_notice("rebalance recommended".into());
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
                stats.set_notice(format!("lifecycle {to}"));
            }
            tracing::info!(from = from.as_deref().unwrap_or("-"), to = %to, meaning = what, "target lifecycle state changed");
        }
        (Event::Maintenance(m), _) => {
            let nb = m
                .not_before
                .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                .unwrap_or_default();
            stats.set_notice(format!("maintenance {} not before {nb}", m.code));
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

pub(super) fn start_lifecycle_heartbeats(
    fleet: Option<Arc<Fleet>>,
    cfg: &Config,
) -> Option<CancellationToken> {
    let Some(hook) = cfg.fleet.lifecycle_hook.clone() else {
        tracing::info!("no fleet.lifecycle_hook configured: draining without lifecycle heartbeats");
        return None;
    };
    let Some(fleet) = fleet.filter(|f| f.group.is_some()) else {
        tracing::warn!("fleet.lifecycle_hook is set but this instance's Auto Scaling group is unknown: no lifecycle heartbeats");
        return None;
    };
    let stop = CancellationToken::new();
    let interval = cfg.fleet.lifecycle_heartbeat_interval.0;
    let token = stop.clone();
    tokio::spawn(async move {
        loop {
            match fleet.lifecycle_heartbeat(&hook).await {
                Ok(()) => tracing::info!(hook = %hook, "lifecycle hook heartbeat sent"),
                Err(e) => {
                    tracing::warn!(error = %e, "lifecycle hook heartbeat failed; retrying next interval")
                }
            }
            tokio::select! {
                () = token.cancelled() => return,
                () = sleep(interval) => {}
            }
        }
    });
    Some(stop)
}

/// Once drained: stop lifecycle heartbeats and complete the hook.
pub(super) async fn finish_drain(
    st: &mut DrainState,
    fleet: &Option<Arc<Fleet>>,
    cfg: &Config,
    beats: &mut Option<CancellationToken>,
) {
    if !st.lifecycle || st.lifecycle_done {
        return;
    }
    st.lifecycle_done = true;
    if let Some(b) = beats.take() {
        b.cancel();
    }
    let (Some(hook), Some(fleet)) = (
        cfg.fleet.lifecycle_hook.as_deref(),
        fleet.as_ref().filter(|f| f.group.is_some()),
    ) else {
        return;
    };
    match fleet.complete_lifecycle(hook).await {
        Ok(()) => tracing::info!(
            hook,
            "lifecycle action completed (CONTINUE): the group may terminate this instance"
        ),
        Err(e) => {
            tracing::error!(error = %e, "could not complete the lifecycle action; the hook's timeout will end it")
        }
    }
}
