//! Pure decisions about time: how long a failed message stays hidden, how far
//! a running job's lease is extended, how long to wait after an SQS error.
//!
//! Plain functions of plain values, no clock and no I/O; the callers in
//! `agent` and `heartbeat` gather the inputs and carry the result out.

use std::time::Duration;

use std::time::SystemTime;

use crate::config::{MetadataConfig, RebalanceAction, SpotSignal, MAX_VISIBILITY};
use crate::notice::{Event, SpotAction};

/// Visibility for a message whose job failed on its `receive_count`-th
/// receive: `base * 2^(receive_count-1)`, capped by `max` and by SQS's 12 h
/// limit. Whole seconds, as SQS takes them.
pub fn retry_backoff(receive_count: u32, base: Duration, max: Duration) -> Duration {
    let exp = receive_count.saturating_sub(1).min(30);
    let secs = base
        .as_secs()
        .max(1)
        .saturating_mul(1u64 << exp)
        .min(max.as_secs())
        .min(MAX_VISIBILITY.as_secs());
    Duration::from_secs(secs)
}

/// The visibility to ask for when renewing a running job's lease at `now`
/// (all times as durations since the message was received):
/// the full `lease`, but never past the job's hard stop (`job_stop`, i.e.
/// its deadline plus the kill grace plus a margin to hand the message back),
/// and never past SQS's 12 h cap counted from the receive. `None` when no
/// extension is needed or possible.
pub fn extension(now: Duration, lease: Duration, job_stop: Duration) -> Option<Duration> {
    let until = (now + lease).min(job_stop).min(MAX_VISIBILITY);
    let secs = until.saturating_sub(now).as_secs_f64().ceil() as u64;
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// Whether a lease ending at `visible_until` should be renewed at `now`,
/// given the heartbeat interval: renew once `interval` has passed since the
/// last renewal (`lease - interval` before its end). Jobs shorter than the
/// interval are never renewed: they cost no heartbeat requests.
pub fn renewal_due(
    now: Duration,
    visible_until: Duration,
    lease: Duration,
    interval: Duration,
) -> bool {
    now + lease.saturating_sub(interval) >= visible_until
}

/// Delay before retrying SQS after `failures` consecutive errors:
/// exponential from `base` to `cap` with full jitter (`jitter` in 0..1).
pub fn error_backoff(failures: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let ceiling = base.saturating_mul(1u32 << exp).min(cap);
    // Full jitter, but never below half the ceiling: spreads a fleet's
    // retries without collapsing into a hot loop.
    ceiling.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
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
pub fn reaction(
    event: &Event,
    md: &MetadataConfig,
    kill_grace: Duration,
    drain_timeout: Duration,
    now: SystemTime,
) -> Reaction {
    match event {
        Event::Spot(n) => {
            let deadline = n.time.checked_sub(md.spot_margin.0).unwrap_or(n.time);
            let left = deadline.duration_since(now).unwrap_or(Duration::ZERO);
            let stop_in = match (md.spot_signal_jobs, n.action) {
                (SpotSignal::Immediately, _) | (_, SpotAction::Hibernate) => Duration::ZERO,
                (SpotSignal::AtDeadline, _) => left.saturating_sub(kill_grace),
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
        Event::Rebalance(_) => match md.rebalance {
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
            stop_jobs_in: Some(drain_timeout),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::SpotNotice;
    use proptest::prelude::*;

    #[test]
    fn spot_jobs_are_signalled_grace_before_the_deadline() {
        let md = MetadataConfig::default(); // margin 15 s
        let now = SystemTime::UNIX_EPOCH + S(1000);
        let n = Event::Spot(SpotNotice {
            action: SpotAction::Terminate,
            time: now + S(120),
        });
        let Reaction::Drain { stop_jobs_in, .. } = reaction(&n, &md, S(10), S(60), now) else {
            panic!()
        };
        assert_eq!(stop_jobs_in, Some(S(95)));
        let md2 = MetadataConfig {
            spot_signal_jobs: SpotSignal::Immediately,
            ..md.clone()
        };
        let Reaction::Drain { stop_jobs_in, .. } = reaction(&n, &md2, S(10), S(60), now) else {
            panic!()
        };
        assert_eq!(stop_jobs_in, Some(S(0)));
        let late = Event::Spot(SpotNotice {
            action: SpotAction::Stop,
            time: now + S(5),
        });
        let Reaction::Drain { stop_jobs_in, .. } = reaction(&late, &md, S(10), S(60), now) else {
            panic!()
        };
        assert_eq!(stop_jobs_in, Some(S(0)));
    }

    #[test]
    fn rebalance_follows_configuration_and_does_not_drain_by_default() {
        let ev = Event::Rebalance(SystemTime::UNIX_EPOCH);
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(
            reaction(&ev, &MetadataConfig::default(), S(1), S(1), now),
            Reaction::Report
        );
        let ignore = MetadataConfig {
            rebalance: RebalanceAction::Ignore,
            ..Default::default()
        };
        assert_eq!(reaction(&ev, &ignore, S(1), S(1), now), Reaction::Ignore);
        let drain = MetadataConfig {
            rebalance: RebalanceAction::Drain,
            ..Default::default()
        };
        assert!(matches!(
            reaction(&ev, &drain, S(1), S(1), now),
            Reaction::Drain {
                stop_jobs_in: None,
                ..
            }
        ));
    }

    #[test]
    fn lifecycle_terminated_drains_like_shutdown() {
        let ev = Event::Lifecycle(Some("InService".into()), "Terminated".into());
        let r = reaction(
            &ev,
            &MetadataConfig::default(),
            S(1),
            S(60),
            SystemTime::UNIX_EPOCH,
        );
        assert!(
            matches!(r, Reaction::Drain { stop_jobs_in: Some(d), lifecycle: true, .. } if d == S(60))
        );
        let standby = Event::Lifecycle(None, "Standby".into());
        assert_eq!(
            reaction(
                &standby,
                &MetadataConfig::default(),
                S(1),
                S(60),
                SystemTime::UNIX_EPOCH
            ),
            Reaction::Report
        );
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn backoff_doubles_then_caps() {
        assert_eq!(retry_backoff(1, S(10), S(300)), S(10));
        assert_eq!(retry_backoff(2, S(10), S(300)), S(20));
        assert_eq!(retry_backoff(4, S(10), S(300)), S(80));
        assert_eq!(retry_backoff(6, S(10), S(300)), S(300));
        assert_eq!(retry_backoff(0, S(10), S(300)), S(10));
        assert_eq!(retry_backoff(u32::MAX, S(10), S(100_000)), MAX_VISIBILITY);
    }

    #[test]
    fn extension_stops_at_the_job_deadline() {
        assert_eq!(extension(S(20), S(60), S(1000)), Some(S(60)));
        assert_eq!(extension(S(20), S(60), S(50)), Some(S(30)));
        assert_eq!(extension(S(50), S(60), S(50)), None);
        assert_eq!(extension(MAX_VISIBILITY, S(60), S(100_000)), None);
    }

    #[test]
    fn short_jobs_need_no_heartbeat() {
        // received at 0, lease 60 s, interval 20 s: due from 20 s on
        assert!(!renewal_due(S(19), S(60), S(60), S(20)));
        assert!(renewal_due(S(20), S(60), S(60), S(20)));
    }

    proptest! {
        #[test]
        fn visibility_never_beyond_12h(now in 0u64..50_000, lease in 1u64..50_000, stop in 0u64..100_000) {
            if let Some(v) = extension(S(now), S(lease), S(stop)) {
                prop_assert!(S(now) + v <= MAX_VISIBILITY + S(1));
                prop_assert!(S(now) + v <= S(stop) + S(1));
                prop_assert!(v <= S(lease));
            }
        }

        #[test]
        fn backoff_bounded_and_monotone(n in 0u32..100, base in 1u64..1000, max in 1u64..100_000) {
            let max = max.max(base);
            let a = retry_backoff(n, S(base), S(max));
            let b = retry_backoff(n + 1, S(base), S(max));
            prop_assert!(a <= b);
            prop_assert!(b <= S(max).min(MAX_VISIBILITY));
        }

        #[test]
        fn spot_jobs_are_stopped_before_the_deadline(in_secs in 0u64..600, margin in 0u64..120, grace in 0u64..60) {
            let md = MetadataConfig { spot_margin: crate::duration::Dur::secs(margin), ..Default::default() };
            let now = SystemTime::UNIX_EPOCH + S(10_000);
            let ev = Event::Spot(SpotNotice { action: SpotAction::Terminate, time: now + S(in_secs) });
            let Reaction::Drain { stop_jobs_in: Some(stop), .. } = reaction(&ev, &md, S(grace), S(60), now) else { panic!() };
            // SIGKILL (stop + grace) never lands after the deadline, unless the deadline has already passed.
            let deadline = in_secs.saturating_sub(margin);
            prop_assert!(stop + S(grace) <= S(deadline).max(S(grace)));
        }

        #[test]
        fn error_backoff_within_bounds(f in 0u32..1000, j in 0.0f64..=1.0) {
            let d = error_backoff(f, Duration::from_millis(500), S(30), j);
            prop_assert!(d >= Duration::from_millis(250));
            prop_assert!(d <= S(30));
        }
    }
}
