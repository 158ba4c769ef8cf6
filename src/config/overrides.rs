//! `DRAINERD_*` environment overrides of configuration fields.
//!
//! The environment is read through [`EnvSource`] so tests pass a map instead
//! of mutating the process environment. Each variable maps to one field; the
//! table below is the documented mapping (README, "Configuration").
//!
//! Over 400 lines because that table holds one entry per variable, which
//! rustfmt spreads over six lines each; the logic is the last hundred.

use std::collections::BTreeMap;

/// Where environment variables come from.
pub trait EnvSource {
    /// All variables whose names start with `prefix`.
    fn with_prefix(&self, prefix: &str) -> Vec<(String, String)>;
}

/// The process environment.
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with(prefix))
            .collect()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        self.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

pub const PREFIX: &str = "DRAINERD_";
/// `DRAINERD_JOB_ENV_<NAME>=value` adds `<NAME>=value` to `job.env`.
pub const JOB_ENV_PREFIX: &str = "DRAINERD_JOB_ENV_";
/// `DRAINERD_JOB_SECRET_ENV_<NAME>=value` adds `<NAME>` to `job.secret_env`.
pub const JOB_SECRET_ENV_PREFIX: &str = "DRAINERD_JOB_SECRET_ENV_";

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    /// `true`/`false` (also 1/0, yes/no).
    Bool,
    /// A number such as 0.5.
    Float,
    /// A duration string or seconds, kept as a string for the parser.
    Dur,
    /// A JSON array of strings, or words separated by whitespace.
    Argv,
}

/// Variable → (section, field, kind).
const FIELDS: &[(&str, &str, &str, Kind)] = &[
    ("DRAINERD_QUEUE_URL", "queue", "url", Kind::Str),
    ("DRAINERD_QUEUE_REGION", "queue", "region", Kind::Str),
    (
        "DRAINERD_QUEUE_ENDPOINT_URL",
        "queue",
        "endpoint_url",
        Kind::Str,
    ),
    ("DRAINERD_QUEUE_WAIT_TIME", "queue", "wait_time", Kind::Dur),
    ("DRAINERD_QUEUE_LEASE", "queue", "lease", Kind::Dur),
    (
        "DRAINERD_QUEUE_HEARTBEAT_INTERVAL",
        "queue",
        "heartbeat_interval",
        Kind::Dur,
    ),
    (
        "DRAINERD_QUEUE_MAX_MESSAGE_BYTES",
        "queue",
        "max_message_bytes",
        Kind::Int,
    ),
    (
        "DRAINERD_QUEUE_START_TIMEOUT",
        "queue",
        "start_timeout",
        Kind::Dur,
    ),
    ("DRAINERD_JOB_COMMAND", "job", "command", Kind::Argv),
    ("DRAINERD_JOB_CONCURRENCY", "job", "concurrency", Kind::Int),
    ("DRAINERD_JOB_WORKING_DIR", "job", "working_dir", Kind::Str),
    ("DRAINERD_JOB_USER", "job", "user", Kind::Str),
    ("DRAINERD_JOB_GROUP", "job", "group", Kind::Str),
    ("DRAINERD_JOB_TIMEOUT", "job", "timeout", Kind::Dur),
    ("DRAINERD_JOB_KILL_GRACE", "job", "kill_grace", Kind::Dur),
    (
        "DRAINERD_JOB_RETRY_BACKOFF_BASE",
        "job",
        "retry_backoff_base",
        Kind::Dur,
    ),
    (
        "DRAINERD_JOB_RETRY_BACKOFF_MAX",
        "job",
        "retry_backoff_max",
        Kind::Dur,
    ),
    (
        "DRAINERD_JOB_LOG_LINE_MAX",
        "job",
        "log_line_max",
        Kind::Int,
    ),
    (
        "DRAINERD_JOB_LOG_LINES_PER_SECOND",
        "job",
        "log_lines_per_second",
        Kind::Int,
    ),
    (
        "DRAINERD_AGENT_DRAIN_TIMEOUT",
        "agent",
        "drain_timeout",
        Kind::Dur,
    ),
    ("DRAINERD_AGENT_LOG_LEVEL", "agent", "log_level", Kind::Str),
    (
        "DRAINERD_METADATA_ENABLED",
        "metadata",
        "enabled",
        Kind::Bool,
    ),
    (
        "DRAINERD_METADATA_ENDPOINT",
        "metadata",
        "endpoint",
        Kind::Str,
    ),
    (
        "DRAINERD_METADATA_POLL_INTERVAL",
        "metadata",
        "poll_interval",
        Kind::Dur,
    ),
    (
        "DRAINERD_METADATA_SPOT_MARGIN",
        "metadata",
        "spot_margin",
        Kind::Dur,
    ),
    (
        "DRAINERD_METADATA_SPOT_SIGNAL_JOBS",
        "metadata",
        "spot_signal_jobs",
        Kind::Str,
    ),
    (
        "DRAINERD_METADATA_REBALANCE",
        "metadata",
        "rebalance",
        Kind::Str,
    ),
    (
        "DRAINERD_METADATA_MAINTENANCE",
        "metadata",
        "maintenance",
        Kind::Str,
    ),
    (
        "DRAINERD_METADATA_MAINTENANCE_LEAD",
        "metadata",
        "maintenance_lead",
        Kind::Dur,
    ),
    (
        "DRAINERD_FLEET_ENDPOINT_URL",
        "fleet",
        "endpoint_url",
        Kind::Str,
    ),
    (
        "DRAINERD_FLEET_LIFECYCLE_HOOK",
        "fleet",
        "lifecycle_hook",
        Kind::Str,
    ),
    (
        "DRAINERD_FLEET_LIFECYCLE_HEARTBEAT_INTERVAL",
        "fleet",
        "lifecycle_heartbeat_interval",
        Kind::Dur,
    ),
    ("DRAINERD_FLEET_BILLING", "fleet", "billing", Kind::Str),
    (
        "DRAINERD_FLEET_IDLE_TIMEOUT",
        "fleet",
        "idle_timeout",
        Kind::Dur,
    ),
    (
        "DRAINERD_FLEET_MIN_LIFETIME",
        "fleet",
        "min_lifetime",
        Kind::Dur,
    ),
    (
        "DRAINERD_FLEET_BACKLOG_PER_INSTANCE",
        "fleet",
        "backlog_per_instance",
        Kind::Float,
    ),
    (
        "DRAINERD_FLEET_HOURLY_WINDOW",
        "fleet",
        "hourly_window",
        Kind::Dur,
    ),
    (
        "DRAINERD_FLEET_PROTECT_WHILE_BUSY",
        "fleet",
        "protect_while_busy",
        Kind::Bool,
    ),
    (
        "DRAINERD_FLEET_PROTECTION_LINGER",
        "fleet",
        "protection_linger",
        Kind::Dur,
    ),
    (
        "DRAINERD_FLEET_CHECK_INTERVAL",
        "fleet",
        "check_interval",
        Kind::Dur,
    ),
    ("DRAINERD_FLEET_DRY_RUN", "fleet", "dry_run", Kind::Bool),
    (
        "DRAINERD_FLEET_POWEROFF_AFTER",
        "fleet",
        "poweroff_after",
        Kind::Dur,
    ),
    ("DRAINERD_STATUS_ENABLED", "status", "enabled", Kind::Bool),
    ("DRAINERD_STATUS_LISTEN", "status", "listen", Kind::Str),
    (
        "DRAINERD_STATUS_REFRESH_INTERVAL",
        "status",
        "refresh_interval",
        Kind::Dur,
    ),
    (
        "DRAINERD_STATUS_CONTROL_TOKEN",
        "status",
        "control_token",
        Kind::Str,
    ),
    (
        "DRAINERD_STATUS_ACTIONS_PER_MINUTE",
        "status",
        "actions_per_minute",
        Kind::Int,
    ),
    (
        "DRAINERD_STATUS_ALLOWED_HOSTS",
        "status",
        "allowed_hosts",
        Kind::Argv,
    ),
    (
        "DRAINERD_TRACKING_ENABLED",
        "tracking",
        "enabled",
        Kind::Bool,
    ),
    ("DRAINERD_TRACKING_TABLE", "tracking", "table", Kind::Str),
    ("DRAINERD_TRACKING_REGION", "tracking", "region", Kind::Str),
    (
        "DRAINERD_TRACKING_ENDPOINT_URL",
        "tracking",
        "endpoint_url",
        Kind::Str,
    ),
    ("DRAINERD_TRACKING_TTL", "tracking", "ttl", Kind::Dur),
    (
        "DRAINERD_TRACKING_QUEUE_CAPACITY",
        "tracking",
        "queue_capacity",
        Kind::Int,
    ),
];

/// Variables that are read elsewhere (CLI flags), not config fields, and
/// the ones drainerd sets for each job (`drain/runner.rs::job_env`), which
/// a job that runs drainerd (`drainerd enqueue` for a follow-up job) passes
/// back: known, so ignored without a word.
const NOT_FIELDS: &[&str] = &[
    "DRAINERD_CONFIG",
    "DRAINERD_LOG_FORMAT",
    "DRAINERD_JOB_ID",
    "DRAINERD_MESSAGE_ID",
    "DRAINERD_RECEIVE_COUNT",
    "DRAINERD_INTERRUPTIONS",
    "DRAINERD_MESSAGE_GROUP_ID",
    "DRAINERD_DEADLINE",
];
/// Each message attribute reaches its job as `DRAINERD_ATTR_<NAME>`.
const ATTR_PREFIX: &str = "DRAINERD_ATTR_";

fn not_a_field(name: &str) -> bool {
    NOT_FIELDS.contains(&name) || name.starts_with(ATTR_PREFIX)
}

/// The documented variable → field mapping, for help and docs.
pub fn mapping() -> impl Iterator<Item = (&'static str, String)> {
    FIELDS
        .iter()
        .map(|(var, sec, field, _)| (*var, format!("{sec}.{field}")))
}

/// True when any config field is set from the environment.
pub fn has_any(env: &dyn EnvSource) -> bool {
    env.with_prefix(PREFIX).iter().any(|(k, _)| {
        k.starts_with(JOB_ENV_PREFIX)
            || k.starts_with(JOB_SECRET_ENV_PREFIX)
            || FIELDS.iter().any(|f| f.0 == k)
    })
}

/// Writes every `DRAINERD_*` variable into `table`. An unknown one is
/// ignored with a warning naming the nearest known variable: environments
/// are shared with wrappers and jobs, and a stray variable must not stop a
/// fleet (the file, by contrast, stays strict).
///
/// # Errors
/// A value of the wrong kind, named.
pub fn apply_overrides(
    table: &mut toml::Table,
    env: &dyn EnvSource,
) -> Result<Vec<String>, String> {
    let mut vars = env.with_prefix(PREFIX);
    vars.sort();
    let mut warnings = Vec::new();
    for (name, raw) in vars {
        if not_a_field(&name) {
            continue;
        }
        let job_tables = [
            (JOB_SECRET_ENV_PREFIX, "secret_env"),
            (JOB_ENV_PREFIX, "env"),
        ];
        if let Some((key, table_name)) = job_tables
            .iter()
            .find_map(|(p, t)| name.strip_prefix(p).map(|k| (k, *t)))
        {
            section(table, "job")
                .entry(table_name)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| format!("job.{table_name} must be a table"))?
                .insert(key.to_string(), toml::Value::String(raw));
            continue;
        }
        let Some((_, sec, field, kind)) = FIELDS.iter().find(|f| f.0 == name) else {
            warnings.push(format!(
                "{name} is not a drainerd setting and is ignored (nearest: {}); remove or rename it",
                nearest(&name)
            ));
            continue;
        };
        let value = match kind {
            Kind::Str | Kind::Dur => toml::Value::String(raw),
            Kind::Int => raw
                .trim()
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|_| {
                    format!("{name}={raw:?} is not a whole number; set a number such as 4")
                })?,
            Kind::Float => raw
                .trim()
                .parse::<f64>()
                .map(toml::Value::Float)
                .map_err(|_| format!("{name}={raw:?} is not a number"))?,
            Kind::Bool => match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
                "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
                _ => return Err(format!("{name}={raw:?} is not true or false")),
            },
            Kind::Argv => toml::Value::Array(
                parse_argv(&raw)
                    .map_err(|e| format!("{name}: {e}"))?
                    .into_iter()
                    .map(toml::Value::String)
                    .collect(),
            ),
        };
        section(table, sec).insert((*field).to_string(), value);
    }
    Ok(warnings)
}

fn section<'a>(table: &'a mut toml::Table, name: &str) -> &'a mut toml::Table {
    let v = table
        .entry(name)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !v.is_table() {
        *v = toml::Value::Table(toml::Table::new());
    }
    v.as_table_mut().expect("just made a table")
}

/// `["/bin/worker", "--flag x"]` (JSON) or `/bin/worker --fast` (words).
fn parse_argv(raw: &str) -> Result<Vec<String>, String> {
    let t = raw.trim();
    if t.starts_with('[') {
        serde_json::from_str::<Vec<String>>(t).map_err(|e| {
            format!(
                "not a JSON array of strings ({e}); write e.g. [\"/usr/bin/worker\", \"--fast\"]"
            )
        })
    } else {
        Ok(t.split_whitespace().map(str::to_string).collect())
    }
}

mod nearest;
pub use nearest::nearest;
