//! When this instance should leave its Auto Scaling group: a pure decision.
//!
//! [`decide`] is a function of plain values (times, counts, configuration)
//! and returns stay or leave with the reason. It is called often and must
//! stay cheap; it never does I/O. The fleet task gathers the inputs and
//! carries the verdict out. Invariants (property-tested below): never leave
//! with a job running or a message in flight, never at desired <= MinSize,
//! in `hourly` mode never outside the window, in `per-second` mode never
//! before `idle_timeout` or `min_lifetime`.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// How the instance is billed, which decides when leaving saves money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Billing {
    /// Linux On-Demand/Spot today: leave after an idle timeout.
    PerSecond,
    /// Whole hours (SUSE, some marketplace images): leave only near the end
    /// of the paid hour.
    Hourly,
    /// Never leave; manage scale-in protection only.
    Never,
}

/// What the decision looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    pub now: SystemTime,
    pub launch_time: SystemTime,
    /// When the last job ended; `None` while jobs run.
    pub idle_since: Option<SystemTime>,
    pub jobs_running: usize,
    /// Messages received and not yet settled (deleted or handed back).
    pub messages_in_flight: usize,
    /// Queue's ApproximateNumberOfMessages (visible backlog).
    pub backlog: u64,
    /// Instances InService in the group (at least this one).
    pub in_service: u32,
    pub desired: u32,
    pub min: u32,
    /// Intake already closed (shutdown, notice, or leaving).
    pub draining: bool,
}

/// The knobs (from `[fleet]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub billing: Billing,
    pub idle_timeout: Duration,
    pub min_lifetime: Duration,
    /// Work is scarce when backlog per InService instance is at or below this.
    pub backlog_per_instance: f64,
    /// Hourly billing: leave only within this long before the next whole
    /// hour since launch.
    pub hourly_window: Duration,
}

/// Stay or leave, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Stay(String),
    Leave(String),
}

impl Verdict {
    pub fn leaves(&self) -> bool {
        matches!(self, Verdict::Leave(_))
    }
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Stay(r) | Verdict::Leave(r) => r,
        }
    }
}

const HOUR: Duration = Duration::from_secs(3600);

/// Time until the next whole hour since launch.
pub fn to_billing_boundary(now: SystemTime, launch: SystemTime) -> Duration {
    let age = now.duration_since(launch).unwrap_or_default();
    let into = Duration::from_secs(age.as_secs() % HOUR.as_secs());
    HOUR - into
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

/// The decision.
pub fn decide(i: &Inputs, r: &Rules) -> Verdict {
    let stay = |why: String| Verdict::Stay(why);
    if r.billing == Billing::Never {
        return stay("billing = never: protection only".into());
    }
    if i.draining {
        return stay("draining".into());
    }
    if i.jobs_running > 0 || i.messages_in_flight > 0 {
        return stay(format!(
            "busy: {} jobs, {} messages in flight",
            i.jobs_running, i.messages_in_flight
        ));
    }
    let Some(idle_since) = i.idle_since else {
        return stay("busy".into());
    };
    if i.desired <= i.min {
        return stay(format!(
            "group at MinSize (desired {} <= min {})",
            i.desired, i.min
        ));
    }
    let per_instance = i.backlog as f64 / f64::from(i.in_service.max(1));
    if per_instance > r.backlog_per_instance {
        return stay(format!(
            "work waiting: backlog {per_instance:.1} per instance > {}",
            r.backlog_per_instance
        ));
    }
    let idle = i.now.duration_since(idle_since).unwrap_or_default();
    let age = i.now.duration_since(i.launch_time).unwrap_or_default();
    match r.billing {
        Billing::Never => unreachable!("handled above"),
        Billing::PerSecond => {
            if age < r.min_lifetime {
                stay(format!(
                    "younger than min_lifetime ({}s of {}s)",
                    secs(age),
                    secs(r.min_lifetime)
                ))
            } else if idle < r.idle_timeout {
                stay(format!(
                    "idle {}s, leaves at {}s (per-second billing)",
                    secs(idle),
                    secs(r.idle_timeout)
                ))
            } else {
                Verdict::Leave(format!(
                    "idle {}s >= {}s and work is scarce (per-second billing)",
                    secs(idle),
                    secs(r.idle_timeout)
                ))
            }
        }
        Billing::Hourly => {
            let left = to_billing_boundary(i.now, i.launch_time);
            if left > r.hourly_window {
                stay(format!(
                    "hour paid: leaves in {}m (hourly window opens {}m before the boundary)",
                    (left - r.hourly_window).as_secs().div_ceil(60),
                    r.hourly_window.as_secs() / 60
                ))
            } else {
                Verdict::Leave(format!(
                    "idle, work scarce, {}s before the billing hour ends (hourly window)",
                    secs(left)
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn base() -> (Inputs, Rules) {
        let launch = SystemTime::UNIX_EPOCH + S(1_000_000);
        (
            Inputs {
                now: launch + S(3000),
                launch_time: launch,
                idle_since: Some(launch + S(2000)),
                jobs_running: 0,
                messages_in_flight: 0,
                backlog: 0,
                in_service: 3,
                desired: 3,
                min: 1,
                draining: false,
            },
            Rules {
                billing: Billing::PerSecond,
                idle_timeout: S(300),
                min_lifetime: S(600),
                backlog_per_instance: 0.0,
                hourly_window: S(300),
            },
        )
    }

    #[test]
    fn per_second_leaves_after_idle_timeout() {
        let (mut i, r) = base();
        assert!(decide(&i, &r).leaves());
        i.idle_since = Some(i.now - S(100));
        assert_eq!(
            decide(&i, &r),
            Verdict::Stay("idle 100s, leaves at 300s (per-second billing)".into())
        );
        i.idle_since = Some(i.now - S(400));
        i.launch_time = i.now - S(500);
        assert!(!decide(&i, &r).leaves(), "min_lifetime");
    }

    #[test]
    fn hourly_leaves_only_in_the_window() {
        let (mut i, mut r) = base();
        r.billing = Billing::Hourly;
        i.launch_time = i.now - S(57 * 60);
        assert!(decide(&i, &r).leaves(), "57 minutes in: inside the last 5");
        i.launch_time = i.now - S(20 * 60);
        let v = decide(&i, &r);
        assert!(!v.leaves());
        assert!(v.reason().contains("leaves in 35m"), "{v:?}");
        i.launch_time = i.now - S(3600 + 58 * 60);
        assert!(decide(&i, &r).leaves(), "second hour, 58 minutes in");
    }

    #[test]
    fn never_at_min_size_or_when_busy_or_with_backlog() {
        let (mut i, r) = base();
        i.desired = 1;
        assert!(decide(&i, &r).reason().contains("MinSize"));
        let (mut i, r) = base();
        i.messages_in_flight = 1;
        assert!(!decide(&i, &r).leaves());
        let (mut i, r) = base();
        i.backlog = 5;
        assert!(decide(&i, &r).reason().contains("work waiting"));
    }

    fn inputs() -> impl Strategy<Value = (Inputs, Rules)> {
        (
            (
                0u64..20_000,
                0u64..20_000,
                proptest::option::of(0u64..20_000),
            ),
            (
                0usize..3,
                0usize..3,
                0u64..50,
                1u32..6,
                0u32..6,
                0u32..6,
                any::<bool>(),
            ),
            (0u8..3, 1u64..2000, 0u64..2000, 0u64..3, 1u64..3600),
        )
            .prop_map(
                |(
                    (age, _x, idle),
                    (jobs, inflight, backlog, in_service, desired, min, draining),
                    (b, idle_t, min_l, thr, win),
                )| {
                    let launch = SystemTime::UNIX_EPOCH + S(1_000_000);
                    let now = launch + S(age);
                    let i = Inputs {
                        now,
                        launch_time: launch,
                        idle_since: idle.map(|d| now - S(d.min(age))),
                        jobs_running: jobs,
                        messages_in_flight: inflight,
                        backlog,
                        in_service,
                        desired,
                        min,
                        draining,
                    };
                    let r = Rules {
                        billing: [Billing::PerSecond, Billing::Hourly, Billing::Never][b as usize],
                        idle_timeout: S(idle_t),
                        min_lifetime: S(min_l),
                        backlog_per_instance: thr as f64,
                        hourly_window: S(win),
                    };
                    (i, r)
                },
            )
    }

    proptest! {
        #[test]
        fn leave_invariants((i, r) in inputs()) {
            let v = decide(&i, &r);
            prop_assert!(!v.reason().is_empty());
            if v.leaves() {
                prop_assert!(i.jobs_running == 0 && i.messages_in_flight == 0, "busy");
                prop_assert!(i.desired > i.min, "at MinSize");
                prop_assert!(!i.draining);
                prop_assert!(r.billing != Billing::Never);
                let idle = i.now.duration_since(i.idle_since.unwrap()).unwrap();
                match r.billing {
                    Billing::PerSecond => {
                        prop_assert!(idle >= r.idle_timeout);
                        prop_assert!(i.now.duration_since(i.launch_time).unwrap() >= r.min_lifetime);
                        prop_assert!(v.reason().contains("per-second"));
                    }
                    Billing::Hourly => {
                        prop_assert!(to_billing_boundary(i.now, i.launch_time) <= r.hourly_window);
                        prop_assert!(v.reason().contains("hourly window"));
                    }
                    Billing::Never => unreachable!(),
                }
            }
        }
    }
}
