//! Time arithmetic that saturates: `later(t, d)` is `t + d`, or the far
//! future when that would not fit. Configured durations are bounded by
//! validation (at most a year), but an instant plus a duration that
//! overflows panics, and a panic here would end a task for good (the fleet
//! task, a job's task): every "now + configured duration" in the agent goes
//! through [`Later::later`] so no value can do that.

use std::time::{Duration, SystemTime};

/// As far ahead as a deadline ever needs to be: a century.
pub const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `self + d`, saturating at [`FOREVER`] from `self`.
pub trait Later: Sized + Copy {
    fn checked(self, d: Duration) -> Option<Self>;
    /// `self + d`, or as near to it as fits (never panics).
    fn later(self, d: Duration) -> Self {
        self.checked(d)
            .or_else(|| self.checked(d.min(FOREVER)))
            .unwrap_or(self)
    }
}

impl Later for tokio::time::Instant {
    fn checked(self, d: Duration) -> Option<Self> {
        self.checked_add(d)
    }
}

impl Later for std::time::Instant {
    fn checked(self, d: Duration) -> Option<Self> {
        self.checked_add(d)
    }
}

impl Later for SystemTime {
    fn checked(self, d: Duration) -> Option<Self> {
        self.checked_add(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_the_largest_duration_saturates() {
        let now = tokio::time::Instant::now();
        let far = now.later(Duration::MAX);
        assert!(far >= now.later(FOREVER / 2));
        assert_eq!(
            now.later(Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        let t = SystemTime::now();
        assert!(t.later(Duration::MAX) > t);
        let i = std::time::Instant::now();
        assert!(i.later(Duration::MAX) > i);
    }
}
