//! The valid range of every duration and number in the configuration,
//! and why each is what it is. `docs/configuration.md` lists the same
//! (checked by a test).

use std::time::Duration;

use super::super::duration::Dur;
use super::super::{Config, MAX_SQS_MESSAGE_BYTES, MAX_VISIBILITY, MAX_WAIT};

/// A duration field's valid range.
pub struct DurRange {
    pub field: &'static str,
    /// `None` for an optional field that is unset.
    pub(super) get: fn(&Config) -> Option<Duration>,
    pub min: Duration,
    pub max: Duration,
    /// Why the range is what it is (shown with a refusal).
    pub why: &'static str,
}

/// A number field's valid range.
pub struct NumRange {
    pub field: &'static str,
    pub(super) get: fn(&Config) -> f64,
    pub min: f64,
    pub max: f64,
    pub why: &'static str,
}

impl DurRange {
    pub(super) fn fix(&self) -> String {
        format!(
            "set it between {} and {} ({})",
            Dur(self.min),
            Dur(self.max),
            self.why
        )
    }
    /// The range as the README shows it, e.g. `1s – 20s`.
    pub fn text(&self) -> String {
        format!("{} – {}", Dur(self.min), Dur(self.max))
    }
}

impl NumRange {
    pub(super) fn fix(&self) -> String {
        format!(
            "set it between {} and {} ({})",
            self.min, self.max, self.why
        )
    }
    pub fn text(&self) -> String {
        format!("{} – {}", self.min, self.max)
    }
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;
/// A year as `humantime` counts it (365.25 days), so it shows as `1year`.
const YEAR: u64 = 31_557_600;

macro_rules! dur {
    ($field:literal, $($path:ident).+, $min:expr, $max:expr, $why:literal) => {
        DurRange { field: $field, get: |c| Some(c.$($path).+.0), min: $min, max: $max, why: $why }
    };
    (optional $field:literal, $($path:ident).+, $min:expr, $max:expr, $why:literal) => {
        DurRange { field: $field, get: |c| c.$($path).+.map(|d| d.0), min: $min, max: $max, why: $why }
    };
}

macro_rules! num {
    ($field:literal, $($path:ident).+, $min:expr, $max:expr, $why:literal) => {
        #[allow(clippy::cast_precision_loss)]
        NumRange { field: $field, get: |c| c.$($path).+ as f64, min: $min as f64, max: $max as f64, why: $why }
    };
}

/// Every duration in the configuration, with its range.
pub const DURATIONS: &[DurRange] = &[
    dur!(
        "queue.wait_time",
        queue.wait_time,
        secs(1),
        MAX_WAIT,
        "SQS long-polls at most 20s; 0 would poll an empty queue without pause"
    ),
    dur!(
        "queue.lease",
        queue.lease,
        secs(2),
        MAX_VISIBILITY,
        "SQS's visibility limits"
    ),
    dur!(
        "queue.heartbeat_interval",
        queue.heartbeat_interval,
        secs(1),
        MAX_VISIBILITY,
        "and below queue.lease"
    ),
    dur!(
        "queue.start_timeout",
        queue.start_timeout,
        secs(1),
        secs(HOUR),
        "how long to retry reaching the queue at start"
    ),
    dur!(
        "job.timeout",
        job.timeout,
        secs(1),
        MAX_VISIBILITY,
        "a message cannot stay invisible longer"
    ),
    dur!(
        "job.kill_grace",
        job.kill_grace,
        secs(0),
        MAX_VISIBILITY,
        "and below job.timeout"
    ),
    dur!(
        "job.retry_backoff_base",
        job.retry_backoff_base,
        secs(1),
        MAX_VISIBILITY,
        "SQS counts visibility in whole seconds: below 1s is no backoff"
    ),
    dur!(
        "job.retry_backoff_max",
        job.retry_backoff_max,
        secs(1),
        MAX_VISIBILITY,
        "SQS counts visibility in whole seconds, up to 12h"
    ),
    dur!(
        "agent.drain_timeout",
        agent.drain_timeout,
        secs(0),
        MAX_VISIBILITY,
        "no job runs longer than 12h"
    ),
    dur!(
        "metadata.poll_interval",
        metadata.poll_interval,
        secs(1),
        secs(HOUR),
        "AWS advises 5s; the metadata service throttles"
    ),
    dur!(
        "metadata.spot_margin",
        metadata.spot_margin,
        secs(0),
        secs(2 * MINUTE),
        "a spot notice comes two minutes ahead"
    ),
    dur!(
        "metadata.maintenance_lead",
        metadata.maintenance_lead,
        secs(0),
        secs(30 * DAY),
        "maintenance is scheduled days ahead"
    ),
    dur!(
        "fleet.lifecycle_heartbeat_interval",
        fleet.lifecycle_heartbeat_interval,
        secs(1),
        secs(HOUR),
        "well below the hook's heartbeat timeout, at most 2h"
    ),
    dur!(
        "fleet.idle_timeout",
        fleet.idle_timeout,
        secs(1),
        secs(30 * DAY),
        "to never leave the group, set fleet.billing = \"never\""
    ),
    dur!(
        "fleet.min_lifetime",
        fleet.min_lifetime,
        secs(0),
        secs(30 * DAY),
        "never leave before this age"
    ),
    dur!(
        "fleet.hourly_window",
        fleet.hourly_window,
        secs(1),
        secs(59 * MINUTE),
        "a window inside the paid hour, e.g. 5m"
    ),
    dur!(
        "fleet.protection_linger",
        fleet.protection_linger,
        secs(0),
        secs(DAY),
        "idle time before scale-in protection is dropped"
    ),
    dur!(
        "fleet.check_interval",
        fleet.check_interval,
        secs(1),
        secs(HOUR),
        "how often the stay/leave decision is taken"
    ),
    dur!(optional "fleet.poweroff_after", fleet.poweroff_after, secs(1), secs(DAY), "or remove it to never power off"),
    dur!(
        "status.refresh_interval",
        status.refresh_interval,
        secs(1),
        secs(HOUR),
        "15s is plenty"
    ),
    dur!(
        "tracking.ttl",
        tracking.ttl,
        secs(MINUTE),
        secs(YEAR),
        "keep items at least as long as jobs take, e.g. 7d"
    ),
];

/// Every number in the configuration, with its range.
pub const NUMBERS: &[NumRange] = &[
    num!(
        "queue.max_message_bytes",
        queue.max_message_bytes,
        1,
        MAX_SQS_MESSAGE_BYTES,
        "SQS's largest message is 1 MiB"
    ),
    num!("job.concurrency", job.concurrency, 1, 10_000, "job slots"),
    num!(
        "job.log_line_max",
        job.log_line_max,
        80,
        1_048_576,
        "bytes of one output line kept"
    ),
    num!(
        "job.log_lines_per_second",
        job.log_lines_per_second,
        1,
        1_000_000,
        "output beyond the rate is dropped and counted"
    ),
    num!(
        "fleet.backlog_per_instance",
        fleet.backlog_per_instance,
        0,
        1_000_000_000,
        "visible messages per InService instance"
    ),
    num!(
        "status.actions_per_minute",
        status.actions_per_minute,
        1,
        600,
        "to disable the buttons, remove status.control_token"
    ),
    num!(
        "tracking.queue_capacity",
        tracking.queue_capacity,
        1,
        1_000_000,
        "updates held in memory while the table is slow"
    ),
];
