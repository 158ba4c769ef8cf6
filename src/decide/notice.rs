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
    /// messages are handed back. `lifecycle`: complete the terminate hook
    /// when drained.
    Drain {
        reason: String,
        stop_jobs_in: Option<Duration>,
        lifecycle: bool,
    },
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
            let left = deadline.duration_since(now).unwrap_or(Duration::ZERO);
            let stop_in = match (rules.spot_signal_jobs, n.action) {
                (SpotSignal::Immediately, _) | (_, SpotAction::Hibernate) => Duration::ZERO,
                (SpotSignal::AtDeadline, _) => left.saturating_sub(rules.kill_grace),
            };
            Reaction::Drain {
                reason: format!(
                    "spot interruption: {} at {}",
                    n.action.name(),
                    humantime::format_rfc3339_seconds(n.time)
                ),
                stop_jobs_in: Some(stop_in),
                lifecycle: false,
            }
        }
        Event::Rebalance(_) => match rules.rebalance {
            RebalanceAction::Ignore => Reaction::Ignore,
            RebalanceAction::Log => Reaction::Report,
            RebalanceAction::Drain => Reaction::Drain {
                reason: "rebalance recommendation".into(),
                stop_jobs_in: None,
                lifecycle: false,
            },
        },
        Event::Lifecycle(_, to) if to == "Terminated" => Reaction::Drain {
            reason: "Auto Scaling is terminating this instance (target lifecycle state Terminated)"
                .into(),
            stop_jobs_in: Some(rules.drain_timeout),
            lifecycle: true,
        },
        Event::MaintenanceDue(m) => Reaction::Drain {
            reason: format!("scheduled maintenance {} ({})", m.id, m.code),
            stop_jobs_in: None,
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn rules(kill_grace: Duration, drain_timeout: Duration) -> NoticeRules {
        NoticeRules {
            spot_margin: S(15),
            spot_signal_jobs: SpotSignal::AtDeadline,
            rebalance: RebalanceAction::Log,
            kill_grace,
            drain_timeout,
        }
    }

    #[test]
    fn spot_jobs_are_signalled_grace_before_the_deadline() {
        let md = rules(S(10), S(60)); // margin 15 s
        let now = SystemTime::UNIX_EPOCH + S(1000);
        let n = Event::Spot(SpotNotice {
            action: SpotAction::Terminate,
            time: now + S(120),
        });
        let Reaction::Drain { stop_jobs_in, .. } = reaction(&n, &md, now) else {
            panic!()
        };
        assert_eq!(stop_jobs_in, Some(S(95)));
        let md2 = NoticeRules {
            spot_signal_jobs: SpotSignal::Immediately,
            ..md
        };
        let Reaction::Drain { stop_jobs_in, .. } = reaction(&n, &md2, now) else {
            panic!()
        };
        assert_eq!(stop_jobs_in, Some(S(0)));
        let late = Event::Spot(SpotNotice {
            action: SpotAction::Stop,
            time: now + S(5),
        });
        let Reaction::Drain { stop_jobs_in, .. } = reaction(&late, &md, now) else {
            panic!()
        };
        assert_eq!(stop_jobs_in, Some(S(0)));
    }

    #[test]
    fn rebalance_follows_configuration_and_does_not_drain_by_default() {
        let ev = Event::Rebalance(SystemTime::UNIX_EPOCH);
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(reaction(&ev, &rules(S(1), S(1)), now), Reaction::Report);
        let ignore = NoticeRules {
            rebalance: RebalanceAction::Ignore,
            ..rules(S(1), S(1))
        };
        assert_eq!(reaction(&ev, &ignore, now), Reaction::Ignore);
        let drain = NoticeRules {
            rebalance: RebalanceAction::Drain,
            ..rules(S(1), S(1))
        };
        assert!(matches!(
            reaction(&ev, &drain, now),
            Reaction::Drain {
                stop_jobs_in: None,
                ..
            }
        ));
    }

    #[test]
    fn lifecycle_terminated_drains_like_shutdown() {
        let ev = Event::Lifecycle(Some("InService".into()), "Terminated".into());
        let r = reaction(&ev, &rules(S(1), S(60)), SystemTime::UNIX_EPOCH);
        assert!(
            matches!(r, Reaction::Drain { stop_jobs_in: Some(d), lifecycle: true, .. } if d == S(60))
        );
        let standby = Event::Lifecycle(None, "Standby".into());
        assert_eq!(
            reaction(&standby, &rules(S(1), S(60)), SystemTime::UNIX_EPOCH),
            Reaction::Report
        );
    }

    #[test]
    fn maintenance_is_due_within_its_lead() {
        let now = SystemTime::UNIX_EPOCH + S(10_000);
        let mut m = Maintenance {
            id: "e".into(),
            code: "system-reboot".into(),
            description: String::new(),
            not_before: Some(now + S(600)),
            state: "active".into(),
        };
        assert!(maintenance_due(&m, S(600), now));
        assert!(!maintenance_due(&m, S(599), now));
        m.not_before = Some(now - S(5));
        assert!(maintenance_due(&m, S(0), now), "already past NotBefore");
        m.not_before = None;
        assert!(!maintenance_due(&m, Duration::MAX, now));
    }

    proptest! {
        #[test]
        fn spot_jobs_are_stopped_before_the_deadline(in_secs in 0u64..600, margin in 0u64..120, grace in 0u64..60) {
            let md = NoticeRules { spot_margin: S(margin), ..rules(S(grace), S(60)) };
            let now = SystemTime::UNIX_EPOCH + S(10_000);
            let ev = Event::Spot(SpotNotice { action: SpotAction::Terminate, time: now + S(in_secs) });
            let Reaction::Drain { stop_jobs_in: Some(stop), .. } = reaction(&ev, &md, now) else { panic!() };
            // SIGKILL (stop + grace) never lands after the deadline, unless the deadline has already passed.
            let deadline = in_secs.saturating_sub(margin);
            prop_assert!(stop + S(grace) <= S(deadline).max(S(grace)));
        }

        #[test]
        fn maintenance_due_never_panics(nb in proptest::option::of(0u64..u64::MAX / 4), lead in 0u64..u64::MAX, now in 0u64..u64::MAX / 4) {
            let m = Maintenance { id: String::new(), code: String::new(), description: String::new(),
                not_before: nb.map(|s| SystemTime::UNIX_EPOCH + S(s)), state: String::new() };
            let _ = maintenance_due(&m, S(lead), SystemTime::UNIX_EPOCH + S(now));
        }
    }
}
