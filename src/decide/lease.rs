//! How long a running job's message stays invisible: when to renew its
//! lease and by how much.

use std::time::Duration;

/// SQS caps a message's visibility at 12 h from its receipt.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// The visibility to ask for when renewing a running job's lease at `now`
/// (all times as durations since the message was received):
/// the full `lease`, but never past the job's hard stop (`job_stop`, i.e.
/// its deadline plus the kill grace plus a margin to hand the message back),
/// and never past SQS's 12 h cap counted from the receive. `None` when no
/// extension is needed or possible.
pub fn extension(now: Duration, lease: Duration, job_stop: Duration) -> Option<Duration> {
    let until = now.saturating_add(lease).min(job_stop).min(MAX_VISIBILITY);
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
    now.saturating_add(lease.saturating_sub(interval)) >= visible_until
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

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
    }
}
