//! The producer and operator subcommands: `enqueue`, `job`, `queue`,
//! `dlq redrive`, `table create`, `cost`, `simulate`. `main` flattens
//! [`ClientCommand`] into its own command list and calls [`run`].
//!
//! These commands read only `[queue]` (url, region, endpoint_url) and
//! `[tracking]` from the configuration (file if present, then `DRAINERD_*`
//! variables, then flags), so a producer needs no `[job]` section;
//! `simulate` alone loads the whole file (its module says why). Exit
//! codes: 0 done; 64 bad usage; 65 some input lines malformed or some jobs
//! not queued; 66 input file unreadable; 69 queue or table unreachable or
//! missing; 78 bad configuration.

pub mod cost;
pub mod enqueue;
mod inspect;
pub mod simulate;

use inspect::{job, queue, redrive};

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::table::{self, Created};
use crate::config::overrides::{self, EnvSource, ProcessEnv};
use crate::config::TrackingConfig;
use crate::exit;
use crate::tracking::Table;

/// Where the client commands find the queue and the table.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Configuration file (only its queue and tracking sections are read; a missing
    /// default file is fine).
    #[arg(
        long,
        env = "DRAINERD_CONFIG",
        default_value = "/etc/drainerd/drainerd.toml"
    )]
    pub config: PathBuf,
    /// Queue URL (default: queue.url from the configuration).
    #[arg(long, value_name = "URL")]
    pub queue: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Enqueue one job (prints its id) or many from a file.
    Enqueue(enqueue::EnqueueArgs),
    /// Show a tracked job's state and history.
    Job {
        #[command(flatten)]
        common: Common,
        /// The job id `enqueue` printed.
        id: String,
    },
    /// Show the queue's depth, messages in flight and delayed, and the DLQ's depth.
    Queue {
        #[command(flatten)]
        common: Common,
    },
    /// Dead-letter queue operations.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Tracking table operations.
    Table {
        #[command(subcommand)]
        command: TableCommand,
    },
    /// Estimate the cost per job and per million jobs.
    Cost(cost::CostArgs),
    /// Replay a workload through simulated fleets: drainerd's leave policy
    /// against ASG scale-in, always-on and a lower bound (docs/simulate.md).
    Simulate(Box<simulate::SimulateArgs>),
}

#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// Move dead-lettered messages back to the queue (reports only, without --yes).
    Redrive {
        #[command(flatten)]
        common: Common,
        /// Really move them (without it: count and report only).
        #[arg(long)]
        yes: bool,
        /// Move at most this many.
        #[arg(long)]
        limit: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum TableCommand {
    /// Create the tracking table (on-demand, key job_id, TTL on expires_at).
    Create {
        #[command(flatten)]
        common: Common,
    },
}

/// A failure with its exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// The settings the client commands use.
#[derive(Debug, Clone)]
pub struct Settings {
    pub queue_url: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub tracking: TrackingConfig,
}

/// Reads `[queue]` and `[tracking]` from `path` (if it exists) and the
/// environment; `--queue` wins.
///
/// # Errors
/// A configuration problem (exit 78).
pub fn settings(common: &Common, env: &dyn EnvSource) -> Result<Settings, Failure> {
    let bad = |m: String| {
        Failure::new(
            exit::CONFIG,
            format!("config {}: {m}", common.config.display()),
        )
    };
    let text = match std::fs::read_to_string(&common.config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(bad(format!("cannot read: {e}"))),
    };
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        bad(format!("not valid TOML: {}", e.to_string().trim_end()))
    })?;
    let warnings = overrides::apply_overrides(&mut table, env)
        .map_err(|e| Failure::new(exit::CONFIG, format!("environment: {e}")))?;
    for w in warnings {
        eprintln!("drainerd: warning: environment: {w}");
    }
    let tracking_table = table.remove("tracking");
    let queue = table.get("queue").and_then(|q| q.as_table());
    let get = |k: &str| {
        queue
            .and_then(|q| q.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let tracking: TrackingConfig = match tracking_table {
        Some(t) => TrackingConfig::deserialize(t)
            .map_err(|e| bad(format!("[tracking]: {}", e.to_string().trim_end())))?,
        None => TrackingConfig::default(),
    };
    if tracking.enabled {
        tracking.validate().map_err(bad)?;
    }
    let queue_url = common.queue.clone().or_else(|| get("url"));
    if let Some(u) = &queue_url {
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            return Err(Failure::new(
                exit::USAGE,
                format!("queue {u:?} is not a queue URL; pass --queue https://sqs.REGION.amazonaws.com/ACCOUNT/NAME"),
            ));
        }
    }
    Ok(Settings {
        region: get("region").or_else(|| {
            queue_url
                .as_deref()
                .and_then(crate::config::region_from_queue_url)
        }),
        queue_url,
        endpoint_url: get("endpoint_url"),
        tracking,
    })
}

use serde::Deserialize;

impl Settings {
    /// # Errors
    /// No queue URL anywhere (exit 64).
    pub fn queue_url(&self) -> Result<&str, Failure> {
        self.queue_url.as_deref().ok_or_else(|| {
            Failure::new(
                exit::USAGE,
                "no queue: pass --queue URL, or set queue.url in the configuration or DRAINERD_QUEUE_URL",
            )
        })
    }

    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        let sdk = crate::aws::sdk_config(
            crate::aws::https_client(),
            self.region.clone(),
            self.endpoint_url.as_deref(),
        )
        .await;
        aws_sdk_sqs::Client::new(&sdk)
    }

    /// The tracking table when `[tracking]` is enabled.
    pub async fn table(&self) -> Option<Table> {
        if !self.tracking.enabled {
            return None;
        }
        Some(
            Table::connect(
                &self.tracking,
                self.region.clone(),
                crate::aws::https_client(),
            )
            .await,
        )
    }

    /// The table, or exit 78 saying how to turn tracking on.
    ///
    /// # Errors
    /// Tracking is off.
    pub async fn require_table(&self) -> Result<Table, Failure> {
        self.table()
            .await
            .ok_or_else(|| Failure::new(exit::CONFIG, table::TableError::NotConfigured.to_string()))
    }
}

/// Runs a client command; returns the process exit code.
pub fn run(cmd: ClientCommand) -> ExitCode {
    if let ClientCommand::Cost(args) = &cmd {
        return finish(cost::run(args));
    }
    if let ClientCommand::Simulate(args) = &cmd {
        return finish(simulate::run(args));
    }
    crate::system::logging::init(crate::system::logging::LogFormat::Text, "warn");
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return finish(Err(Failure::new(
                exit::SOFTWARE,
                format!("cannot start the runtime: {e}"),
            )))
        }
    };
    finish(rt.block_on(dispatch(cmd)))
}

fn finish(r: Result<(), Failure>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("drainerd: {}", f.message);
            ExitCode::from(f.code as u8)
        }
    }
}

async fn dispatch(cmd: ClientCommand) -> Result<(), Failure> {
    match cmd {
        ClientCommand::Enqueue(args) => enqueue::run(args).await,
        ClientCommand::Job { common, id } => job(&common, &id).await,
        ClientCommand::Queue { common } => queue(&common).await,
        ClientCommand::Dlq {
            command: DlqCommand::Redrive { common, yes, limit },
        } => redrive(&common, yes, limit).await,
        ClientCommand::Table {
            command: TableCommand::Create { common },
        } => create_table(&common).await,
        ClientCommand::Cost(args) => cost::run(&args),
        ClientCommand::Simulate(args) => simulate::run(&args),
    }
}

/// A duration argument of `cost` and `simulate`: "90s", "10m", "3d" or
/// a number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .or_else(|_| {
            s.parse::<f64>()
                .ok()
                .and_then(|v| Duration::try_from_secs_f64(v).ok())
                .ok_or(())
        })
        .map_err(|_| format!("{s:?} is not a duration; write e.g. 500ms, 90s, 10m or 3d"))
}

fn unavailable(e: impl std::fmt::Display) -> Failure {
    Failure::new(exit::UNAVAILABLE, e.to_string())
}

async fn create_table(common: &Common) -> Result<(), Failure> {
    let s = settings(common, &ProcessEnv)?;
    let mut cfg = s.tracking.clone();
    // `table create` is how tracking starts: it needs no `enabled = true`.
    cfg.enabled = true;
    let t = Table::connect(&cfg, s.region.clone(), crate::aws::https_client()).await;
    match table::create(&t, Duration::from_secs(120)).await {
        Ok(Created::Created) => println!(
            "created table {} (on-demand, key job_id, TTL on expires_at)",
            t.name
        ),
        Ok(Created::AlreadyExists) => println!(
            "table {} already exists (TTL on expires_at checked)",
            t.name
        ),
        Err(e) => return Err(unavailable(e)),
    }
    Ok(())
}
