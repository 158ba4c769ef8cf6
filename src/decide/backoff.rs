//! How long to wait: a failed message's visibility, and the pause after an
//! AWS error.

use std::time::Duration;

use super::lease::MAX_VISIBILITY;

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

/// Delay before retrying after `failures` consecutive errors: exponential
/// from `base` to `cap` with full jitter (`jitter` in 0..1).
pub fn error_backoff(failures: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let ceiling = base.saturating_mul(1u32 << exp).min(cap);
    // Full jitter, but never below half the ceiling: spreads a fleet's
    // retries without collapsing into a hot loop.
    ceiling.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    proptest! {
        #[test]
        fn backoff_bounded_and_monotone(n in 0u32..100, base in 1u64..1000, max in 1u64..100_000) {
            let max = max.max(base);
            let a = retry_backoff(n, S(base), S(max));
            let b = retry_backoff(n + 1, S(base), S(max));
            prop_assert!(a <= b);
            prop_assert!(b <= S(max).min(MAX_VISIBILITY));
        }

        #[test]
        fn error_backoff_within_bounds(f in 0u32..1000, j in 0.0f64..=1.0) {
            let d = error_backoff(f, Duration::from_millis(500), S(30), j);
            prop_assert!(d >= Duration::from_millis(250));
            prop_assert!(d <= S(30));
        }
    }
}
