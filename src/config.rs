//! Configuration: one TOML file, every field overridable from the environment.
//!
//! This module owns parsing, defaults (all in [`Defaults`] impls below) and
//! validation. It never touches the network; checks that need AWS happen at
//! start in `agent`. Every error names the field and says how to fix it, and
//! maps to exit code 78 (`EX_CONFIG`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::Dur;
use crate::env::{self, EnvSource};
use crate::leave::Billing;

/// `queue.url = "tag:KEY"`: the URL is the value of the instance tag KEY,
/// read at start from instance metadata (`tags/instance/KEY`; the instance
/// must have instance metadata tags enabled).
pub const TAG_PREFIX: &str = "tag:";

/// SQS refuses a long poll above 20 s.
pub const MAX_WAIT: Duration = Duration::from_secs(20);
/// SQS caps a message's visibility at 12 h from its receipt.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
/// SQS's largest message body (1 MiB since 2025; older queues 256 KiB).
pub const MAX_SQS_MESSAGE_BYTES: usize = 1024 * 1024;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub queue: QueueConfig,
    pub job: JobConfig,
    #[serde(default)]
    pub agent: AgentConfig,
    #[serde(default)]
    pub metadata: MetadataConfig,
    #[serde(default)]
    pub fleet: FleetConfig,
    #[serde(default)]
    pub status: StatusConfig,
    /// Job-state tracking in DynamoDB (off by default); see `tracking`.
    #[serde(default)]
    pub tracking: crate::tracking::TrackingConfig,
}

/// Where the work comes from and how messages are leased.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// The SQS queue URL to drain. Needs a restart to change.
    pub url: String,
    /// AWS region. Default: taken from the queue URL's host, else the SDK's
    /// usual sources (AWS_REGION, profile, instance metadata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Endpoint override for emulators (e.g. `http://127.0.0.1:5000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Long-poll wait per receive (at most 20 s). Longer waits mean fewer
    /// requests while the queue is empty.
    #[serde(default = "QueueConfig::default_wait_time")]
    pub wait_time: Dur,
    /// Visibility timeout asked for on receive: how long a message stays
    /// hidden if this instance vanishes without a word.
    #[serde(default = "QueueConfig::default_lease")]
    pub lease: Dur,
    /// How often a running job's lease is renewed. Must be below the lease;
    /// a third of it leaves room for two failed renewals.
    #[serde(default = "QueueConfig::default_heartbeat_interval")]
    pub heartbeat_interval: Dur,
    /// Largest message body accepted, in bytes. A larger message is not run:
    /// it is handed back with backoff so the redrive policy dead-letters it.
    #[serde(default = "QueueConfig::default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// How long to keep trying to reach the queue at start before giving up
    /// with exit code 69 (networks come up late at boot).
    #[serde(default = "QueueConfig::default_start_timeout")]
    pub start_timeout: Dur,
}

impl QueueConfig {
    fn default_wait_time() -> Dur {
        Dur::secs(20)
    }
    fn default_lease() -> Dur {
        Dur::secs(60)
    }
    fn default_heartbeat_interval() -> Dur {
        Dur::secs(20)
    }
    fn default_max_message_bytes() -> usize {
        MAX_SQS_MESSAGE_BYTES
    }
    fn default_start_timeout() -> Dur {
        Dur::secs(30)
    }
}

/// What runs for each message.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// Program and arguments, exec'd directly (no shell). The message body
    /// arrives on stdin.
    pub command: Vec<String>,
    /// Job slots: how many jobs run at once on this instance.
    #[serde(default = "JobConfig::default_concurrency")]
    pub concurrency: usize,
    /// Working directory of each job. Default: the agent's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<PathBuf>,
    /// Extra environment for each job (on top of the agent's environment).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Longest a job may run before it is stopped and its message handed back.
    #[serde(default = "JobConfig::default_timeout")]
    pub timeout: Dur,
    /// Time between SIGTERM and SIGKILL when a job is stopped.
    #[serde(default = "JobConfig::default_kill_grace")]
    pub kill_grace: Dur,
    /// Visibility given to a failed message on its first failure; doubles
    /// with each further receive.
    #[serde(default = "JobConfig::default_retry_backoff_base")]
    pub retry_backoff_base: Dur,
    /// Cap of the failure backoff (at most 12 h, SQS's visibility limit).
    #[serde(default = "JobConfig::default_retry_backoff_max")]
    pub retry_backoff_max: Dur,
    /// Longest output line forwarded to the log, in bytes; the rest of a
    /// longer line is dropped (and counted).
    #[serde(default = "JobConfig::default_log_line_max")]
    pub log_line_max: usize,
    /// Output lines per second forwarded to the log from all jobs together;
    /// lines beyond it are dropped and counted, so a flooding job cannot
    /// exhaust memory or the journal.
    #[serde(default = "JobConfig::default_log_lines_per_second")]
    pub log_lines_per_second: u32,
}

impl JobConfig {
    fn default_concurrency() -> usize {
        4
    }
    fn default_timeout() -> Dur {
        Dur::secs(15 * 60)
    }
    fn default_kill_grace() -> Dur {
        Dur::secs(10)
    }
    fn default_retry_backoff_base() -> Dur {
        Dur::secs(10)
    }
    fn default_retry_backoff_max() -> Dur {
        Dur::secs(15 * 60)
    }
    fn default_log_line_max() -> usize {
        4096
    }
    fn default_log_lines_per_second() -> u32 {
        200
    }
}

/// The agent process itself.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// On SIGTERM: how long running jobs may finish before they are stopped
    /// and their messages handed back. Keep systemd's TimeoutStopSec above
    /// drain_timeout + kill_grace.
    #[serde(default = "AgentConfig::default_drain_timeout")]
    pub drain_timeout: Dur,
    /// Log filter (`error`, `warn`, `info`, `debug`, or a tracing directive).
    #[serde(default = "AgentConfig::default_log_level")]
    pub log_level: String,
}

impl AgentConfig {
    fn default_drain_timeout() -> Dur {
        Dur::secs(60)
    }
    fn default_log_level() -> String {
        "info".into()
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            drain_timeout: Self::default_drain_timeout(),
            log_level: Self::default_log_level(),
        }
    }
}

/// What to do with a rebalance recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RebalanceAction {
    Ignore,
    /// Log and report it; keep working (it fires far more often than
    /// interruptions).
    Log,
    /// Stop taking new work; let running jobs finish.
    Drain,
}

/// What to do with a scheduled maintenance event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaintenanceAction {
    Log,
    /// Stop taking new work `maintenance_lead` before the event's NotBefore.
    Drain,
}

/// When running jobs hear about a spot interruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpotSignal {
    /// Let jobs run until `deadline - job.kill_grace`, then SIGTERM; SIGKILL
    /// at the deadline.
    AtDeadline,
    /// SIGTERM at once (for jobs that checkpoint on SIGTERM).
    Immediately,
}

/// The EC2 instance metadata service (IMDSv2): who this instance is, and
/// notices about its end.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataConfig {
    /// Off for machines outside EC2: no identity, no interruption notices.
    #[serde(default = "MetadataConfig::default_enabled")]
    pub enabled: bool,
    /// Metadata service URL. Default: the SDK's (http://169.254.169.254, or
    /// AWS_EC2_METADATA_SERVICE_ENDPOINT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// How often the notice paths are polled (at least 1 s; AWS advises 5 s).
    #[serde(default = "MetadataConfig::default_poll_interval")]
    pub poll_interval: Dur,
    /// Safety margin before a spot interruption's time: every message is
    /// settled by `time - spot_margin`.
    #[serde(default = "MetadataConfig::default_spot_margin")]
    pub spot_margin: Dur,
    #[serde(default = "MetadataConfig::default_spot_signal_jobs")]
    pub spot_signal_jobs: SpotSignal,
    #[serde(default = "MetadataConfig::default_rebalance")]
    pub rebalance: RebalanceAction,
    #[serde(default = "MetadataConfig::default_maintenance")]
    pub maintenance: MaintenanceAction,
    /// With `maintenance = "drain"`: how long before NotBefore to drain.
    #[serde(default = "MetadataConfig::default_maintenance_lead")]
    pub maintenance_lead: Dur,
}

impl MetadataConfig {
    fn default_enabled() -> bool {
        true
    }
    fn default_poll_interval() -> Dur {
        Dur::secs(5)
    }
    fn default_spot_margin() -> Dur {
        Dur::secs(15)
    }
    fn default_spot_signal_jobs() -> SpotSignal {
        SpotSignal::AtDeadline
    }
    fn default_rebalance() -> RebalanceAction {
        RebalanceAction::Log
    }
    fn default_maintenance() -> MaintenanceAction {
        MaintenanceAction::Log
    }
    fn default_maintenance_lead() -> Dur {
        Dur::secs(600)
    }
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            enabled: Self::default_enabled(),
            endpoint: None,
            poll_interval: Self::default_poll_interval(),
            spot_margin: Self::default_spot_margin(),
            spot_signal_jobs: Self::default_spot_signal_jobs(),
            rebalance: Self::default_rebalance(),
            maintenance: Self::default_maintenance(),
            maintenance_lead: Self::default_maintenance_lead(),
        }
    }
}

/// This instance's Auto Scaling group: the terminate hook, scale-in
/// protection while busy, and leaving the group when work is scarce.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// Auto Scaling endpoint override (emulators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Name of the group's terminate lifecycle hook (transition
    /// autoscaling:EC2_INSTANCE_TERMINATING). When set, drainerd keeps the
    /// hook alive while it drains and completes it with CONTINUE when done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_hook: Option<String>,
    /// How often to send RecordLifecycleActionHeartbeat while draining; keep
    /// it well below the hook's heartbeat timeout (30 s .. 2 h).
    #[serde(default = "FleetConfig::default_lifecycle_heartbeat_interval")]
    pub lifecycle_heartbeat_interval: Dur,
    /// When leaving saves money: "per-second" (leave after idle_timeout),
    /// "hourly" (leave only in the last hourly_window of a paid hour), or
    /// "never" (manage scale-in protection only).
    #[serde(default = "FleetConfig::default_billing")]
    pub billing: Billing,
    /// per-second billing: leave after this long without work. Must be above
    /// 0 (to never leave, say billing = "never").
    #[serde(default = "FleetConfig::default_idle_timeout")]
    pub idle_timeout: Dur,
    /// Never leave before the instance is this old.
    #[serde(default = "FleetConfig::default_min_lifetime")]
    pub min_lifetime: Dur,
    /// Work is scarce when the queue's visible backlog per InService
    /// instance is at or below this.
    #[serde(default)]
    pub backlog_per_instance: f64,
    /// hourly billing: leave only this long before the next whole hour since
    /// launch.
    #[serde(default = "FleetConfig::default_hourly_window")]
    pub hourly_window: Dur,
    /// Turn scale-in protection on while busy, off after protection_linger idle.
    #[serde(default = "FleetConfig::default_protect_while_busy")]
    pub protect_while_busy: bool,
    /// Idle time before protection is dropped (so bursts don't flap it).
    #[serde(default = "FleetConfig::default_protection_linger")]
    pub protection_linger: Dur,
    /// How often the stay/leave decision is taken.
    #[serde(default = "FleetConfig::default_check_interval")]
    pub check_interval: Dur,
    /// Log every decision and would-be Auto Scaling call without making it.
    #[serde(default)]
    pub dry_run: bool,
    /// After the terminate request, power off through systemd if the
    /// platform has not stopped the instance within this long. Needs
    /// permission to run `systemctl poweroff` (see README).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poweroff_after: Option<Dur>,
}

impl FleetConfig {
    fn default_lifecycle_heartbeat_interval() -> Dur {
        Dur::secs(60)
    }
    fn default_billing() -> Billing {
        Billing::PerSecond
    }
    fn default_idle_timeout() -> Dur {
        Dur::secs(600)
    }
    fn default_min_lifetime() -> Dur {
        Dur::secs(300)
    }
    fn default_hourly_window() -> Dur {
        Dur::secs(300)
    }
    fn default_protect_while_busy() -> bool {
        true
    }
    fn default_protection_linger() -> Dur {
        Dur::secs(120)
    }
    fn default_check_interval() -> Dur {
        Dur::secs(30)
    }
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            endpoint_url: None,
            lifecycle_hook: None,
            lifecycle_heartbeat_interval: Self::default_lifecycle_heartbeat_interval(),
            billing: Self::default_billing(),
            idle_timeout: Self::default_idle_timeout(),
            min_lifetime: Self::default_min_lifetime(),
            backlog_per_instance: 0.0,
            hourly_window: Self::default_hourly_window(),
            protect_while_busy: Self::default_protect_while_busy(),
            protection_linger: Self::default_protection_linger(),
            check_interval: Self::default_check_interval(),
            dry_run: false,
            poweroff_after: None,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: cannot read: {source}; create it or pass --config PATH")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config {path}: {field} {problem}; {fix}")]
    Invalid {
        path: PathBuf,
        field: String,
        problem: String,
        fix: String,
    },
    #[error("environment: {0}")]
    Env(String),
}

impl Config {
    /// Reads `path`, applies `DRAINERD_*` overrides from `env`, validates.
    ///
    /// # Errors
    /// Any [`ConfigError`]: unreadable file, bad TOML, unknown key, unknown
    /// `DRAINERD_*` variable, or a value that fails validation.
    pub fn load(path: &Path, env: &dyn EnvSource) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            // Everything may come from the environment (user-data, containers).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && env::has_any(env) => {
                String::new()
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.into(),
                    source,
                })
            }
        };
        Self::from_str_with_env(&text, path, env)
    }

    /// Like [`Config::load`] with the file's text already read.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn from_str_with_env(
        text: &str,
        path: &Path,
        env: &dyn EnvSource,
    ) -> Result<Config, ConfigError> {
        let parse_err = |message: String| ConfigError::Parse {
            path: path.into(),
            message,
        };
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            parse_err(format!("not valid TOML: {}", e.to_string().trim_end()))
        })?;
        env::apply_overrides(&mut table, env).map_err(ConfigError::Env)?;
        let config: Config = Config::deserialize(table)
            .map_err(|e| parse_err(e.to_string().trim_end().to_string()))?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
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
        for key in j.env.keys() {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(bad(
                    "job.env",
                    format!("has an invalid variable name {key:?}"),
                    "use names without '=' or NUL",
                ));
            }
        }
        Ok(())
    }

    /// The region to use: explicit, else the one in a standard queue URL.
    pub fn region(&self) -> Option<String> {
        self.queue
            .region
            .clone()
            .or_else(|| region_from_queue_url(&self.queue.url))
    }

    /// Settings that only take effect on restart, as (field, old, new) where
    /// they differ.
    pub fn restart_only_changes(&self, new: &Config) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        let mut cmp = |field, a: String, b: String| {
            if a != b {
                out.push((field, a, b));
            }
        };
        // A URL read from an instance tag is compared as the tag reference.
        if !new.queue.url.starts_with(TAG_PREFIX) {
            cmp("queue.url", self.queue.url.clone(), new.queue.url.clone());
        }
        cmp(
            "queue.region",
            format!("{:?}", self.queue.region),
            format!("{:?}", new.queue.region),
        );
        cmp(
            "queue.endpoint_url",
            format!("{:?}", self.queue.endpoint_url),
            format!("{:?}", new.queue.endpoint_url),
        );
        cmp(
            "metadata",
            format!("{:?}", self.metadata),
            format!("{:?}", new.metadata),
        );
        cmp(
            "fleet",
            format!("{:?}", self.fleet),
            format!("{:?}", new.fleet),
        );
        cmp(
            "status",
            format!("{:?}", self.status),
            format!("{:?}", new.status),
        );
        cmp(
            "tracking",
            format!("{:?}", self.tracking),
            format!("{:?}", new.tracking),
        );
        cmp(
            "agent.log_level",
            self.agent.log_level.clone(),
            new.agent.log_level.clone(),
        );
        out
    }

    /// The effective configuration as TOML, for `check-config`. Job
    /// environment values and the control token are redacted: they often
    /// carry secrets.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        if let Some(t) = shown.status.control_token.as_mut() {
            *t = "<redacted>".into();
        }
        for v in shown.job.env.values_mut() {
            *v = "<redacted>".into();
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// `https://sqs.eu-west-1.amazonaws.com/123/q` → `eu-west-1`.
pub fn region_from_queue_url(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    let mut parts = host.split('.');
    if parts.next()? != "sqs" {
        return None;
    }
    let region = parts.next()?;
    (parts.next()? == "amazonaws").then(|| region.to_string())
}

mod status;
pub use status::StatusConfig;

#[cfg(test)]
mod tests;
