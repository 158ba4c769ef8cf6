//! The simulated Auto Scaling group: its size limits, target tracking on
//! backlog per instance, boot, billing and spot interruptions, as plain
//! values and pure rules (docs/simulate.md, "The fleet model").
//!
//! Target tracking, as modelled: every minute (CloudWatch's period) one
//! datapoint, `visible ÷ max(1, InService)`. After `out_after` datapoints
//! in a row above the target, desired capacity becomes
//! `ceil(visible ÷ target)` if that is more (capacity still booting or
//! warming counts, so repeated alarms do not stack). After `in_after`
//! datapoints in a row below the target, and only when no instance is
//! booting or within its warm-up, desired capacity falls to
//! `max(min, ceil(visible ÷ target))` — in the policies that let the group
//! scale in. A group at zero with a backlog launches one instance (AWS's
//! metric math has no value without an InService instance; such groups
//! need a step policy on the plain backlog, which this stands for).

use super::{Ms, HOUR, SECOND};

/// How EC2 bills the simulated instances. (What drainerd *assumes* is
/// `[fleet] billing`; they are set separately so a mismatch can be tried.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pay {
    /// Per second with a 60 s minimum (Linux On-Demand and Spot).
    PerSecond,
    /// Every started hour (SUSE, some marketplace images).
    Hourly,
}

/// Everything about the group and its instances that drainerd's
/// configuration does not say.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// The group's MinSize and MaxSize.
    pub min: u32,
    pub max: u32,
    /// `[job] concurrency`: jobs one instance runs at once.
    pub concurrency: u32,
    /// Launch to READY (InService, agent receiving).
    pub boot: Ms,
    /// The group's instance warm-up after READY.
    pub warmup: Ms,
    /// Target tracking's target: visible messages per InService instance.
    pub target: f64,
    /// Datapoints in a row above the target before scaling out. (The
    /// defaults, 3 and 15, are the counts commonly reported for the alarms
    /// target tracking creates; AWS's guides do not state them.)
    pub out_after: u32,
    /// Datapoints in a row below the target before scaling in (when the
    /// policy lets the group scale in).
    pub in_after: u32,
    /// Dollars per instance-hour.
    pub price_per_hour: f64,
    pub pay: Pay,
    /// Spot interruptions per instance-hour (0: none). Each comes with the
    /// two-minute notice; the group launches a replacement.
    pub spot_per_hour: f64,
    /// The simulation ends here; instances still up are billed to here.
    pub horizon: Ms,
    /// `[queue] lease` and `heartbeat_interval`: when a killed job's
    /// message is visible again.
    pub lease: Ms,
    pub heartbeat: Ms,
}

/// A spot interruption's notice comes this long before the instance goes.
pub const SPOT_NOTICE: Ms = 120 * SECOND;

impl Fleet {
    /// # Errors
    /// A value that makes no sense, naming the flag.
    pub fn check(&self) -> Result<(), String> {
        if self.max == 0 || self.min > self.max {
            return Err(format!(
                "--min-size {} and --max-size {}: need min <= max and max >= 1",
                self.min, self.max
            ));
        }
        if self.concurrency == 0 {
            return Err("job.concurrency must be at least 1".into());
        }
        if !(self.target.is_finite() && self.target > 0.0) {
            return Err(format!("--target-backlog {} must be above 0", self.target));
        }
        if self.out_after == 0 || self.in_after == 0 {
            return Err("--scale-out-after and --scale-in-after must be at least 1".into());
        }
        if !(self.price_per_hour.is_finite() && self.price_per_hour >= 0.0) {
            return Err(format!("--price {} must be >= 0", self.price_per_hour));
        }
        if !(self.spot_per_hour.is_finite() && self.spot_per_hour >= 0.0) {
            return Err(format!("--spot-rate {} must be >= 0", self.spot_per_hour));
        }
        Ok(())
    }

    /// Dollars for `paid` instance-milliseconds.
    pub fn dollars(&self, paid: Ms) -> f64 {
        paid as f64 * self.price_per_hour / HOUR as f64
    }
}

/// What an instance that lived `life` ms is billed, in ms. One still up at
/// the horizon is billed what it used so far (the window ends, the bill
/// does not close): otherwise per second, at least 60 s, or whole hours.
pub fn billed(life: Ms, ended: bool, pay: Pay) -> Ms {
    if !ended {
        return life;
    }
    match pay {
        Pay::PerSecond => (life.div_ceil(SECOND) * SECOND).max(60 * SECOND),
        Pay::Hourly => life.div_ceil(HOUR).max(1) * HOUR,
    }
}

/// The alarms' state: datapoints in a row above and below the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Alarms {
    pub high: u32,
    pub low: u32,
}

/// What the group looks like at a datapoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Visible messages (ApproximateNumberOfMessagesVisible).
    pub visible: u64,
    pub in_service: u32,
    /// Instances launched and not terminated (booting included).
    pub live: u32,
    pub desired: u32,
    /// Some instance is booting or within its warm-up.
    pub warming: bool,
}

/// Target tracking at one datapoint: the new desired capacity.
/// `scale_out` / `scale_in` say which directions the policy allows.
pub fn datapoint(
    f: &Fleet,
    (min, max): (u32, u32),
    alarms: &mut Alarms,
    r: Reading,
    scale_out: bool,
    scale_in: bool,
) -> u32 {
    let metric = r.visible as f64 / f64::from(r.in_service.max(1));
    alarms.high = if metric > f.target {
        alarms.high + 1
    } else {
        0
    };
    alarms.low = if metric < f.target { alarms.low + 1 } else { 0 };
    let want = ((r.visible as f64 / f.target).ceil() as u64).min(u64::from(max)) as u32;
    let want = want.max(min);
    if scale_out && r.live == 0 && r.visible > 0 {
        return r.desired.max(1).min(max);
    }
    if scale_out && alarms.high >= f.out_after && want > r.desired {
        return want;
    }
    if scale_in && alarms.low >= f.in_after && !r.warming && want < r.desired {
        return want;
    }
    r.desired
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> Fleet {
        Fleet {
            min: 1,
            max: 10,
            concurrency: 4,
            boot: 90 * SECOND,
            warmup: 60 * SECOND,
            target: 4.0,
            out_after: 3,
            in_after: 15,
            price_per_hour: 0.0416,
            pay: Pay::PerSecond,
            spot_per_hour: 0.0,
            horizon: 24 * HOUR,
            lease: 60 * SECOND,
            heartbeat: 20 * SECOND,
        }
    }

    fn reading(visible: u64, in_service: u32, desired: u32) -> Reading {
        Reading {
            visible,
            in_service,
            live: desired,
            desired,
            warming: false,
        }
    }

    #[test]
    fn billing_rounds_ended_instances_only() {
        assert_eq!(billed(10 * SECOND, true, Pay::PerSecond), 60 * SECOND);
        assert_eq!(billed(61_001, true, Pay::PerSecond), 62 * SECOND);
        assert_eq!(billed(HOUR + 1, true, Pay::Hourly), 2 * HOUR);
        assert_eq!(billed(10, false, Pay::Hourly), 10);
    }

    #[test]
    fn scales_out_after_three_high_datapoints_to_the_backlog_over_target() {
        let f = fleet();
        let mut a = Alarms::default();
        let r = reading(40, 1, 1);
        assert_eq!(datapoint(&f, (1, 10), &mut a, r, true, false), 1);
        assert_eq!(datapoint(&f, (1, 10), &mut a, r, true, false), 1);
        assert_eq!(datapoint(&f, (1, 10), &mut a, r, true, false), 10);
        let mut a = Alarms::default();
        for _ in 0..3 {
            datapoint(&f, (1, 10), &mut a, reading(400, 1, 1), true, false);
        }
        assert_eq!(
            datapoint(&f, (1, 10), &mut a, reading(400, 1, 1), true, false),
            10,
            "capped at max"
        );
    }

    #[test]
    fn scales_in_only_when_allowed_and_not_warming() {
        let f = fleet();
        let mut a = Alarms::default();
        for _ in 0..14 {
            assert_eq!(
                datapoint(&f, (1, 10), &mut a, reading(0, 5, 5), true, true),
                5
            );
        }
        let mut warm = reading(0, 5, 5);
        warm.warming = true;
        assert_eq!(datapoint(&f, (1, 10), &mut a, warm, true, true), 5);
        assert_eq!(
            datapoint(&f, (1, 10), &mut a, reading(0, 5, 5), true, false),
            5
        );
        assert_eq!(
            datapoint(&f, (1, 10), &mut a, reading(0, 5, 5), true, true),
            1
        );
    }

    #[test]
    fn a_group_at_zero_wakes_on_any_backlog() {
        let f = fleet();
        let mut a = Alarms::default();
        let r = Reading {
            visible: 1,
            in_service: 0,
            live: 0,
            desired: 0,
            warming: false,
        };
        assert_eq!(datapoint(&f, (0, 10), &mut a, r, true, false), 1);
        assert_eq!(datapoint(&f, (0, 10), &mut a, r, false, false), 0);
    }
}
