//! What instance metadata says about the instance's future, in plain
//! values, and what drainerd does about each notice.
//!
//! The watcher (`metadata/`) parses the bodies and turns successive polls
//! into [`Event`]s; [`reaction`] decides; the supervisor carries it out.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// What a spot interruption will do to the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpotAction {
    Terminate,
    Stop,
    Hibernate,
}

impl SpotAction {
    pub fn name(self) -> &'static str {
        match self {
            SpotAction::Terminate => "terminate",
            SpotAction::Stop => "stop",
            SpotAction::Hibernate => "hibernate",
        }
    }
}

/// `spot/instance-action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpotNotice {
    pub action: SpotAction,
    /// When the action happens.
    pub time: SystemTime,
}

/// One `events/maintenance/scheduled` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintenance {
    pub id: String,
    pub code: String,
    pub description: String,
    pub not_before: Option<SystemTime>,
    pub state: String,
}

/// A change worth reacting to or reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Spot(SpotNotice),
    SpotWithdrawn,
    Rebalance(SystemTime),
    RebalanceWithdrawn,
    /// Target lifecycle state changed (from, to).
    Lifecycle(Option<String>, String),
    Maintenance(Maintenance),
    MaintenanceWithdrawn(String),
    /// A maintenance event's NotBefore is within the configured lead.
    MaintenanceDue(Maintenance),
}

impl Event {
    /// The notice's kind, as a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Spot(_) | Event::SpotWithdrawn => "spot",
            Event::Rebalance(_) | Event::RebalanceWithdrawn => "rebalance",
            Event::Lifecycle(..) => "lifecycle",
            Event::Maintenance(_) | Event::MaintenanceWithdrawn(_) | Event::MaintenanceDue(_) => {
                "maintenance"
            }
        }
    }
}

/// What to do with a rebalance recommendation (`metadata.rebalance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RebalanceAction {
    Ignore,
    /// Log and report it; keep working (it fires far more often than
    /// interruptions).
    Log,
    /// Stop taking new work; let running jobs finish.
    Drain,
}

/// What to do with a scheduled maintenance event (`metadata.maintenance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaintenanceAction {
    Log,
    /// Stop taking new work `maintenance_lead` before the event's NotBefore.
    Drain,
}

/// When running jobs hear about a spot interruption
/// (`metadata.spot_signal_jobs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpotSignal {
    /// Let jobs run until `deadline - job.kill_grace`, then SIGTERM; SIGKILL
    /// at the deadline.
    AtDeadline,
    /// SIGTERM at once (for jobs that checkpoint on SIGTERM).
    Immediately,
}

/// The settings a reaction depends on, as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticeRules {
    /// Every message is settled by a spot notice's time minus this.
    pub spot_margin: Duration,
    pub spot_signal_jobs: SpotSignal,
    pub rebalance: RebalanceAction,
    /// `job.kill_grace`: SIGTERM comes this long before SIGKILL.
    pub kill_grace: Duration,
    /// `agent.drain_timeout`: how long jobs may finish when the group
    /// terminates the instance.
    pub drain_timeout: Duration,
}

/// What the agent does about a metadata event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// Report it (log, status); keep working.
    Report,
    /// Not even worth a log line at info (configured `ignore`).
    Ignore,
    /// Stop receiving. Running jobs get until `stop_jobs_in` (from now; `None`
    /// = their own timeouts), then SIGTERM, `kill_grace`, SIGKILL, and their
    /// messages are handed back. With `kill_in`, SIGKILL comes no later
    /// than that (from now), whatever `kill_grace` is: a deadline that is
    /// not the agent's (a spot interruption). `lifecycle`: complete the
    /// terminate hook when drained.
    Drain {
        reason: String,
        cause: DrainCause,
        stop_jobs_in: Option<Duration>,
        kill_in: Option<Duration>,
        lifecycle: bool,
    },
}

/// Which notice a drain is for: it decides how the drain ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainCause {
    Spot,
    Rebalance,
    /// The scheduled event's id.
    Maintenance(String),
    /// The group is terminating the instance (the lifecycle hook).
    Terminating,
}

/// How a drain for a notice ends, when it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainEnd {
    /// Not yet (or never: the instance is going away).
    Stay,
    /// Take work again: the notice is gone.
    Resume,
    /// Leave the group through the normal leave path (taking work again if
    /// the group refuses, e.g. at MinSize).
    Leave,
}

/// What a drain for `cause` does on `event`. A withdrawn spot notice (a
/// stop or hibernate that AWS cancelled), a withdrawn rebalance
/// recommendation and a maintenance event that is over or cancelled end
/// it: the instance takes work again. Nothing ends a drain for the group's
/// own termination.
pub fn drain_ends_on(cause: &DrainCause, event: &Event) -> DrainEnd {
    match (cause, event) {
        (DrainCause::Spot, Event::SpotWithdrawn) => DrainEnd::Resume,
        (DrainCause::Rebalance, Event::RebalanceWithdrawn) => DrainEnd::Resume,
        (DrainCause::Maintenance(id), Event::MaintenanceWithdrawn(gone)) if id == gone => {
            DrainEnd::Resume
        }
        _ => DrainEnd::Stay,
    }
}

/// What a drain for `cause` does once every job has ended. A rebalance
/// recommendation means elevated interruption risk that does not pass:
/// the drained instance leaves its group (a replacement is the group's
/// business). A spot interruption or maintenance waits for its time (or
/// its withdrawal); the group's own termination waits for the group.
pub fn when_drained(cause: &DrainCause) -> DrainEnd {
    match cause {
        DrainCause::Rebalance => DrainEnd::Leave,
        DrainCause::Spot | DrainCause::Maintenance(_) | DrainCause::Terminating => DrainEnd::Stay,
    }
}

/// When to signal running jobs so that every one is gone by `deadline`:
/// SIGTERM `grace` before it (or now, if that has passed), SIGKILL at it
/// (or now). Returns (SIGTERM in, SIGKILL in), from `now`.
pub fn kill_schedule(
    now: SystemTime,
    deadline: SystemTime,
    grace: Duration,
) -> (Duration, Duration) {
    let kill = deadline.duration_since(now).unwrap_or(Duration::ZERO);
    (kill.saturating_sub(grace), kill)
}

/// Decides the reaction to `event` at `now`.
///
/// Spot: every message must be settled by `time - spot_margin`; jobs are
/// signalled `kill_grace` before that (or at once), so SIGKILL lands at the
/// deadline and hand-backs follow immediately. Hibernate gives no warning
/// worth waiting on: jobs are signalled at once.
pub fn reaction(event: &Event, rules: &NoticeRules, now: SystemTime) -> Reaction {
    match event {
        Event::Spot(n) => {
            let deadline = n.time.checked_sub(rules.spot_margin).unwrap_or(n.time);
            let (term_in, kill_in) = kill_schedule(now, deadline, rules.kill_grace);
            let stop_in = match (rules.spot_signal_jobs, n.action) {
                (SpotSignal::Immediately, _) | (_, SpotAction::Hibernate) => Duration::ZERO,
                (SpotSignal::AtDeadline, _) => term_in,
            };
            Reaction::Drain {
                reason: format!(
                    "spot interruption: {} at {}",
                    n.action.name(),
                    humantime::format_rfc3339_seconds(n.time)
                ),
                cause: DrainCause::Spot,
                stop_jobs_in: Some(stop_in),
                kill_in: Some(kill_in),
                lifecycle: false,
            }
        }
        Event::Rebalance(_) => match rules.rebalance {
            RebalanceAction::Ignore => Reaction::Ignore,
            RebalanceAction::Log => Reaction::Report,
            RebalanceAction::Drain => Reaction::Drain {
                reason: "rebalance recommendation".into(),
                cause: DrainCause::Rebalance,
                stop_jobs_in: None,
                kill_in: None,
                lifecycle: false,
            },
        },
        Event::Lifecycle(_, to) if to == "Terminated" => Reaction::Drain {
            reason: "Auto Scaling is terminating this instance (target lifecycle state Terminated)"
                .into(),
            cause: DrainCause::Terminating,
            stop_jobs_in: Some(rules.drain_timeout),
            kill_in: None,
            lifecycle: true,
        },
        Event::MaintenanceDue(m) => Reaction::Drain {
            reason: format!("scheduled maintenance {} ({})", m.id, m.code),
            cause: DrainCause::Maintenance(m.id.clone()),
            stop_jobs_in: None,
            kill_in: None,
            lifecycle: false,
        },
        _ => Reaction::Report,
    }
}

/// Whether a scheduled maintenance event is due at `now`: its NotBefore is
/// within `lead`. An event without a readable NotBefore is never due.
pub fn maintenance_due(m: &Maintenance, lead: Duration, now: SystemTime) -> bool {
    m.not_before
        .is_some_and(|nb| nb.duration_since(now).map_or(true, |left| left <= lead))
}

#[cfg(test)]
mod tests;
