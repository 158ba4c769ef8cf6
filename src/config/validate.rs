//! Validation: every rule a loaded configuration must meet, each refusal
//! naming the field and the fix.

use std::path::Path;
use std::time::Duration;

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
        if q.wait_time.0 > MAX_WAIT {
            return Err(bad(
                "queue.wait_time",
                format!("is {} but SQS allows at most 20s", q.wait_time),
                "set it to 20s or less",
            ));
        }
        if q.lease.0 < Duration::from_secs(2) || q.lease.0 > MAX_VISIBILITY {
            return Err(bad(
                "queue.lease",
                format!("is {}", q.lease),
                "set it between 2s and 12h (SQS's visibility limits)",
            ));
        }
        if q.heartbeat_interval.0 < Duration::from_secs(1) || q.heartbeat_interval.0 >= q.lease.0 {
            return Err(bad(
                "queue.heartbeat_interval",
                format!("is {} with a lease of {}", q.heartbeat_interval, q.lease),
                "set it to at least 1s and below queue.lease (a third of it is a good choice)",
            ));
        }
        if q.max_message_bytes == 0 || q.max_message_bytes > MAX_SQS_MESSAGE_BYTES {
            return Err(bad(
                "queue.max_message_bytes",
                format!("is {}", q.max_message_bytes),
                "set it between 1 and 1048576 (SQS's largest message)",
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
        if j.concurrency == 0 || j.concurrency > 10_000 {
            return Err(bad(
                "job.concurrency",
                format!("is {}", j.concurrency),
                "set it between 1 and 10000 job slots",
            ));
        }
        if j.timeout.0.is_zero() || j.timeout.0 > MAX_VISIBILITY {
            return Err(bad(
                "job.timeout",
                format!("is {}", j.timeout),
                "set it above 0s and at most 12h (a message cannot stay invisible longer)",
            ));
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
        if j.retry_backoff_base.0.is_zero()
            || j.retry_backoff_base.0 > j.retry_backoff_max.0
            || j.retry_backoff_max.0 > MAX_VISIBILITY
        {
            return Err(bad(
                "job.retry_backoff_base",
                format!(
                    "is {} with job.retry_backoff_max {}",
                    j.retry_backoff_base, j.retry_backoff_max
                ),
                "use 0s < retry_backoff_base <= retry_backoff_max <= 12h",
            ));
        }
        if j.log_line_max < 80 {
            return Err(bad(
                "job.log_line_max",
                format!("is {}", j.log_line_max),
                "set it to at least 80 bytes",
            ));
        }
        if j.log_lines_per_second == 0 {
            return Err(bad(
                "job.log_lines_per_second",
                "is 0".into(),
                "set it to at least 1 (output beyond the rate is dropped and counted)",
            ));
        }
        let m = &self.metadata;
        if m.poll_interval.0 < Duration::from_secs(1) {
            return Err(bad(
                "metadata.poll_interval",
                format!("is {}", m.poll_interval),
                "set it to 1s or more (AWS advises 5s; the metadata service throttles)",
            ));
        }
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
        if f.lifecycle_heartbeat_interval.0 < Duration::from_secs(1) {
            return Err(bad(
                "fleet.lifecycle_heartbeat_interval",
                format!("is {}", f.lifecycle_heartbeat_interval),
                "set it to at least 1s and well below the hook's heartbeat timeout",
            ));
        }
        if f.idle_timeout.0.is_zero() {
            return Err(bad(
                "fleet.idle_timeout",
                "is 0".into(),
                "set a positive idle time; to never leave the group, set fleet.billing = \"never\"",
            ));
        }
        if f.hourly_window.0.is_zero() || f.hourly_window.0 >= Duration::from_secs(3600) {
            return Err(bad(
                "fleet.hourly_window",
                format!("is {}", f.hourly_window),
                "set it between 1s and 59m (e.g. 5m)",
            ));
        }
        if !(f.backlog_per_instance >= 0.0 && f.backlog_per_instance.is_finite()) {
            return Err(bad(
                "fleet.backlog_per_instance",
                format!("is {}", f.backlog_per_instance),
                "set it to 0 or a positive number of messages",
            ));
        }
        if f.check_interval.0 < Duration::from_secs(1) {
            return Err(bad(
                "fleet.check_interval",
                format!("is {}", f.check_interval),
                "set it to 1s or more",
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
        for (key, value) in &j.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(bad(
                    "job.env",
                    format!("has an invalid variable name {key:?}"),
                    "use names without '=' or NUL",
                ));
            }
            if value.contains('\0') {
                return Err(bad(
                    &format!("job.env.{key}"),
                    "contains a NUL byte (no process environment can hold one)".into(),
                    "remove the NUL byte from the value",
                ));
            }
        }
        Ok(())
    }
}
