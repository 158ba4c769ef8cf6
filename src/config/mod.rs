//! Configuration: one TOML file, every field overridable from the environment.
//!
//! This module owns parsing, defaults (each section's `default_*` functions
//! and `Default` impls), `DRAINERD_*` overrides (`overrides.rs`), durations
//! (`duration.rs`), validation (`validate.rs`) and which settings a reload
//! may change (`RESTART_ONLY`, one list); the `[metadata]`, `[fleet]`,
//! `[status]` and `[tracking]` sections live in files of their own. It
//! never touches the network; checks that need AWS happen at start in the
//! supervisor. Every error names the field and says how to fix it, and
//! maps to exit code 78 (`EX_CONFIG`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use duration::Dur;
use overrides::EnvSource;
pub use secret::Secret;

/// `queue.url = "tag:KEY"`: the URL is the value of the instance tag KEY,
/// read at start from instance metadata (`tags/instance/KEY`; the instance
/// must have instance metadata tags enabled).
pub const TAG_PREFIX: &str = "tag:";

/// SQS refuses a long poll above 20 s.
pub const MAX_WAIT: Duration = Duration::from_secs(20);
pub use crate::decide::lease::MAX_VISIBILITY;
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
    pub tracking: TrackingConfig,
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
    /// Secret environment for each job: like `env`, but the values are
    /// secrets, never shown in logs, `check-config` or `/status.json`. A
    /// table of its own (rather than names in `env` marked secret) so the
    /// mark travels with the value's type: no code path can print one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_env: BTreeMap<String, Secret>,
    /// Run jobs as this user (a name or uid) rather than drainerd's own, so
    /// a job cannot read drainerd's configuration (the control token) or
    /// signal it. Needs CAP_SETUID, CAP_SETGID and CAP_KILL (README,
    /// "Running jobs as another user"). Needs a restart to change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The jobs' group (a name or gid). Default: `job.user`'s primary
    /// group. Jobs get no supplementary groups. Needs a restart to change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
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

impl Config {
    /// Reads `path`, applies `DRAINERD_*` overrides from `env`, validates.
    ///
    /// # Errors
    /// Any [`ConfigError`]: unreadable file, bad TOML, unknown key, unknown
    /// `DRAINERD_*` variable, or a value that fails validation.
    pub fn load(path: &Path, env: &dyn EnvSource) -> Result<Config, ConfigError> {
        Self::load_with_warnings(path, env).map(|(c, _)| c)
    }

    /// Like [`Config::load`], with the warnings an operator should see
    /// (unknown `DRAINERD_*` variables, ignored: environments are shared
    /// with wrappers and jobs).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_with_warnings(
        path: &Path,
        env: &dyn EnvSource,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            // Everything may come from the environment (user-data, containers).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && overrides::has_any(env) => {
                String::new()
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.into(),
                    source,
                })
            }
        };
        Self::from_str_with_warnings(&text, path, env)
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
        Self::from_str_with_warnings(text, path, env).map(|(c, _)| c)
    }

    /// Like [`Config::from_str_with_env`], with the warnings.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn from_str_with_warnings(
        text: &str,
        path: &Path,
        env: &dyn EnvSource,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let parse_err = |message: String| ConfigError::Parse {
            path: path.into(),
            message,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| parse_err(toml_error(text, &e)))?;
        let warnings = overrides::apply_overrides(&mut table, env).map_err(ConfigError::Env)?;
        let config: Config = Config::deserialize(table)
            .map_err(|e| parse_err(e.to_string().trim_end().to_string()))?;
        config.validate(path)?;
        Ok((config, warnings))
    }

    /// The region to use: explicit, else the one in a standard queue URL.
    pub fn region(&self) -> Option<String> {
        self.queue
            .region
            .clone()
            .or_else(|| region_from_queue_url(&self.queue.url))
    }

    /// The settings notice reactions depend on, as plain values.
    pub fn notice_rules(&self) -> crate::decide::notice::NoticeRules {
        crate::decide::notice::NoticeRules {
            spot_margin: self.metadata.spot_margin.0,
            spot_signal_jobs: self.metadata.spot_signal_jobs,
            rebalance: self.metadata.rebalance,
            kill_grace: self.job.kill_grace.0,
            drain_timeout: self.agent.drain_timeout.0,
        }
    }

    /// Settings that only take effect on restart, as (field, running,
    /// requested) where `new` asks for a change ([`RESTART_ONLY`]).
    pub fn restart_only_changes(&self, new: &Config) -> Vec<(&'static str, String, String)> {
        RESTART_ONLY
            .iter()
            .filter(|s| !(s.unchanged)(self, new))
            .map(|s| (s.field, (s.show)(self), (s.show)(new)))
            .collect()
    }

    /// What a reload applies: `new`, with every restart-only setting kept
    /// at its running value (this configuration's).
    pub fn with_restart_only_from(mut self, running: &Config) -> Config {
        for s in RESTART_ONLY {
            (s.keep)(&mut self, running);
        }
        self
    }

    /// The effective configuration as TOML, for `check-config`. Secrets
    /// (the control token, `job.secret_env`) show as `<redacted>` however
    /// they are printed; `job.env` values are redacted here too, as they
    /// always were: they often carry secrets put there before
    /// `job.secret_env` existed.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        for v in shown.job.env.values_mut() {
            *v = secret::REDACTED.into();
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

pub mod duration;
mod error;
mod restart_only;
use error::toml_error;
pub use error::ConfigError;
use restart_only::RESTART_ONLY;
mod fleet;
mod metadata;
pub mod overrides;
pub mod secret;
mod status;
mod tracking;
pub mod validate;
pub use fleet::FleetConfig;
pub use metadata::{MaintenanceAction, MetadataConfig, RebalanceAction, SpotSignal};
pub use status::StatusConfig;
pub use tracking::TrackingConfig;

#[cfg(test)]
mod tests;
