//! Validation: every rule a loaded configuration must meet, each refusal
//! naming the field and the fix.
//!
//! Every duration and number has a range ([`DURATIONS`], [`NUMBERS`]: the
//! configuration reference, docs/configuration.md, lists the same). The ranges are what
//! keep the agent's time arithmetic far from overflow (the longest
//! duration is a year); the arithmetic saturates as well
//! (`system::clock`), so a value that slipped past would still not panic.

use std::path::Path;
use std::time::Duration;

use super::duration::Dur;
use super::{Config, ConfigError, MAX_VISIBILITY, TAG_PREFIX};

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

mod ranges;
pub use ranges::{DurRange, NumRange, DURATIONS, NUMBERS};

#[cfg(test)]
mod tests;
