//! Validation: every rule a loaded configuration must meet, each refusal
//! naming the field and the fix.
//!
//! Every duration and number has a range ([`DURATIONS`], [`NUMBERS`]: the
//! README's configuration reference lists the same). The ranges are what
//! keep the agent's time arithmetic far from overflow (the longest
//! duration is 365 days); the arithmetic saturates as well
//! (`system::clock`), so a value that slipped past would still not panic.

use std::path::Path;
use std::time::Duration;

use super::duration::Dur;
use super::{Config, ConfigError, MAX_SQS_MESSAGE_BYTES, MAX_VISIBILITY, MAX_WAIT, TAG_PREFIX};

/// Time allowed around a job inside SQS's 12 h visibility cap: from the
/// receive to the job's start, and from its end to its hand-back.
const START_AND_SETTLE: Duration = Duration::from_secs(60);

impl Config {
    pub(super) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |field: &str, problem: String, fix: &str| ConfigError::Invalid {
            path: path.into(),
            field: field.into(),
            problem,
            fix: fix.into(),
        };
        if self.tracking.enabled {
            if let Err(problem) = self.tracking.validate() {
                return Err(bad(
                    "[tracking]",
                    problem,
                    "see the README, \"Job-state tracking\"",
                ));
            }
        }
        for r in DURATIONS {
            if let Some(d) = (r.get)(self) {
                if d < r.min || d > r.max {
                    return Err(bad(r.field, format!("is {}", Dur(d)), &r.fix()));
                }
            }
        }
        for r in NUMBERS {
            let n = (r.get)(self);
            if n < r.min || n > r.max {
                return Err(bad(r.field, format!("is {n}"), &r.fix()));
            }
        }
        let q = &self.queue;
        let j = &self.job;
        let from_tag = q.url.strip_prefix(TAG_PREFIX);
        if from_tag.is_some_and(|k| k.is_empty() || k.contains('/')) {
            return Err(bad(
                "queue.url",
                format!("is {:?}, an empty or invalid tag key", q.url),
                "write tag:KEY with the instance tag's key, e.g. tag:drainerd-queue-url",
            ));
        }
        if from_tag.is_none() && !(q.url.starts_with("https://") || q.url.starts_with("http://")) {
            return Err(bad(
                "queue.url",
                format!("is {:?}, not a queue URL", q.url),
                "set it to the queue's URL, e.g. https://sqs.us-east-1.amazonaws.com/123456789012/jobs, or tag:KEY to read it from an instance tag",
            ));
        }
        if q.heartbeat_interval.0 >= q.lease.0 {
            return Err(bad(
                "queue.heartbeat_interval",
                format!("is {} with a lease of {}", q.heartbeat_interval, q.lease),
                "set it to at least 1s and below queue.lease (a third of it is a good choice)",
            ));
        }
        match j.command.first() {
            None => {
                return Err(bad(
                    "job.command",
                    "is empty".into(),
                    "set it to the program that runs one job, e.g. [\"/usr/local/bin/worker\"]",
                ))
            }
            Some(p) if p.is_empty() => {
                return Err(bad(
                    "job.command",
                    "has an empty program name".into(),
                    "set job.command[0] to the program's path",
                ))
            }
            Some(_) => {}
        }
        // SQS refuses to keep a message invisible past 12 h from its
        // receive: a job's timeout, its kill grace and a minute to start it
        // and hand its message back must fit, or a renewal is refused while
        // the job still runs (and another worker gets the message).
        if j.timeout
            .0
            .saturating_add(j.kill_grace.0)
            .saturating_add(START_AND_SETTLE)
            > MAX_VISIBILITY
        {
            return Err(bad(
                "job.timeout",
                format!(
                    "is {} with job.kill_grace {}: together over 11h59m",
                    j.timeout, j.kill_grace
                ),
                "keep job.timeout + job.kill_grace within 12h minus a minute (SQS keeps a message invisible for at most 12h from its receive)",
            ));
        }
        if j.kill_grace.0 >= j.timeout.0 {
            return Err(bad(
                "job.kill_grace",
                format!("is {} with a job timeout of {}", j.kill_grace, j.timeout),
                "set it below job.timeout",
            ));
        }
        if j.retry_backoff_base.0 > j.retry_backoff_max.0 {
            return Err(bad(
                "job.retry_backoff_base",
                format!(
                    "is {} with job.retry_backoff_max {}",
                    j.retry_backoff_base, j.retry_backoff_max
                ),
                "use 1s <= retry_backoff_base <= retry_backoff_max <= 12h",
            ));
        }
        let m = &self.metadata;
        if let Some(ep) = &m.endpoint {
            if !(ep.starts_with("http://") || ep.starts_with("https://")) {
                return Err(bad(
                    "metadata.endpoint",
                    format!("is {ep:?}"),
                    "set it to a URL such as http://169.254.169.254, or remove it",
                ));
            }
        }
        let f = &self.fleet;
        if !f.backlog_per_instance.is_finite() {
            return Err(bad(
                "fleet.backlog_per_instance",
                format!("is {}", f.backlog_per_instance),
                "set it to 0 or a positive number of messages",
            ));
        }
        if f.lifecycle_hook.as_deref() == Some("") {
            return Err(bad(
                "fleet.lifecycle_hook",
                "is empty".into(),
                "set it to the terminate hook's name, or remove it",
            ));
        }
        if let Some((field, problem, fix)) = self.status.problem() {
            return Err(bad(field, problem, fix));
        }
        if let Some(dir) = &j.working_dir {
            if !dir.is_dir() {
                return Err(bad(
                    "job.working_dir",
                    format!("{} is not a directory", dir.display()),
                    "create it or remove the setting",
                ));
            }
        }
        let secret = j
            .secret_env
            .iter()
            .map(|(k, v)| (k, v.expose(), "job.secret_env"));
        for (key, value, table) in j
            .env
            .iter()
            .map(|(k, v)| (k, v.as_str(), "job.env"))
            .chain(secret)
        {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(bad(
                    table,
                    format!("has an invalid variable name {key:?}"),
                    "use names without '=' or NUL",
                ));
            }
            if value.contains('\0') {
                return Err(bad(
                    &format!("{table}.{key}"),
                    "contains a NUL byte (no process environment can hold one)".into(),
                    "remove the NUL byte from the value",
                ));
            }
        }
        if let Some(name) = j.env.keys().find(|k| j.secret_env.contains_key(*k)) {
            return Err(bad(
                &format!("job.secret_env.{name}"),
                "is also in job.env".into(),
                "keep each variable in one table: job.secret_env for secrets, job.env for the rest",
            ));
        }
        if let Err(problem) = crate::system::privileges::resolve(j) {
            return Err(bad(
                if j.user.is_some() { "job.user" } else { "job.group" },
                problem,
                "name an existing unprivileged user (and group), e.g. one made with `useradd --system drainerd-job`; see README \"Running jobs as another user\"",
            ));
        }
        Ok(())
    }
}

/// A duration field's valid range.
pub struct DurRange {
    pub field: &'static str,
    /// `None` for an optional field that is unset.
    get: fn(&Config) -> Option<Duration>,
    pub min: Duration,
    pub max: Duration,
    /// Why the range is what it is (shown with a refusal).
    pub why: &'static str,
}

/// A number field's valid range.
pub struct NumRange {
    pub field: &'static str,
    get: fn(&Config) -> f64,
    pub min: f64,
    pub max: f64,
    pub why: &'static str,
}

impl DurRange {
    fn fix(&self) -> String {
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
    fn fix(&self) -> String {
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
        secs(365 * DAY),
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

#[cfg(test)]
mod tests;
