//! Which settings a reload may change: the one list (`RESTART_ONLY`) that
//! both reports a refused change and keeps the running value.

use super::{Config, TAG_PREFIX};

/// A setting that only takes effect on restart. This list is the only
/// place that says so: reload both reports a refused change and keeps the
/// running value from it. Everything else changes on reload (SIGHUP).
pub(super) struct RestartOnly {
    pub(super) field: &'static str,
    /// The setting as the log shows it.
    pub(super) show: fn(&Config) -> String,
    /// The two configurations agree on it.
    pub(super) unchanged: fn(&Config, &Config) -> bool,
    /// Copies the running value into a new configuration.
    pub(super) keep: fn(&mut Config, &Config),
}

macro_rules! restart_only {
    ($field:literal, $($path:ident).+) => {
        RestartOnly {
            field: $field,
            show: |c| format!("{:?}", c.$($path).+),
            unchanged: |a, b| a.$($path).+ == b.$($path).+,
            keep: |new, running| new.$($path).+ = running.$($path).+.clone(),
        }
    };
}

/// The settings a running agent cannot change: its queue and the clients,
/// tasks and listeners built at start from them.
pub(super) const RESTART_ONLY: &[RestartOnly] = &[
    // A URL read from an instance tag is compared as the tag reference.
    RestartOnly {
        field: "queue.url",
        show: |c| c.queue.url.clone(),
        unchanged: |a, b| b.queue.url.starts_with(TAG_PREFIX) || a.queue.url == b.queue.url,
        keep: |new, running| new.queue.url = running.queue.url.clone(),
    },
    restart_only!("queue.region", queue.region),
    restart_only!("queue.endpoint_url", queue.endpoint_url),
    restart_only!("job.user", job.user),
    restart_only!("job.group", job.group),
    restart_only!("metadata", metadata),
    restart_only!("fleet", fleet),
    // Field by field, so a changed token is named without being shown
    // (a Secret's Debug is `<redacted>`).
    restart_only!("status.enabled", status.enabled),
    restart_only!("status.listen", status.listen),
    restart_only!("status.refresh_interval", status.refresh_interval),
    restart_only!("status.control_token", status.control_token),
    restart_only!("status.actions_per_minute", status.actions_per_minute),
    restart_only!("status.allowed_hosts", status.allowed_hosts),
    restart_only!("tracking", tracking),
    restart_only!("agent.log_level", agent.log_level),
];
