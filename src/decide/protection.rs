//! Whether this instance should be protected from scale-in now.

use std::time::Duration;

/// Protection is wanted while the instance holds work (jobs running or
/// messages not yet settled) and for `linger` after the last job ended, so
/// a bursty queue does not flap it. `idle_for` is `None` while jobs run.
pub fn wanted(running: usize, held: usize, idle_for: Option<Duration>, linger: Duration) -> bool {
    running > 0 || held > 0 || idle_for.is_some_and(|d| d < linger)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn protected_while_busy_and_for_the_linger() {
        assert!(wanted(1, 0, None, S(120)));
        assert!(wanted(0, 3, Some(S(500)), S(120)), "messages still held");
        assert!(wanted(0, 0, Some(S(119)), S(120)));
        assert!(!wanted(0, 0, Some(S(120)), S(120)));
        assert!(!wanted(0, 0, Some(S(5)), S(0)), "no linger");
    }

    proptest! {
        #[test]
        fn never_unprotected_with_work(running in 0usize..4, held in 0usize..4, idle in proptest::option::of(0u64..10_000), linger in 0u64..10_000) {
            if running > 0 || held > 0 {
                prop_assert!(wanted(running, held, idle.map(S), S(linger)));
            }
        }
    }
}
