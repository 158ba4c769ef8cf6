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
pub mod simulate;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::admin::Admin;
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
    overrides::apply_overrides(&mut table, env)
        .map_err(|e| Failure::new(exit::CONFIG, format!("environment: {e}")))?;
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

fn unavailable(e: impl std::fmt::Display) -> Failure {
    Failure::new(exit::UNAVAILABLE, e.to_string())
}

async fn job(common: &Common, id: &str) -> Result<(), Failure> {
    let s = settings(common, &ProcessEnv)?;
    let t = s.require_table().await?;
    let Some(j) = table::status(&t, id).await.map_err(unavailable)? else {
        return Err(Failure::new(
            1,
            format!(
                "job {id}: not in table {} (never tracked, mistyped, or expired)",
                t.name
            ),
        ));
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!("job         {}", j.job_id);
    println!("state       {}", j.state.map_or("?", |s| s.name()));
    println!("attempts    {}", j.attempts);
    println!("queued      {}", opt(&j.queued_at));
    println!("started     {}", opt(&j.started_at));
    println!("finished    {}", opt(&j.finished_at));
    println!("instance    {}", opt(&j.instance_id));
    println!("message     {}", opt(&j.message_id));
    println!(
        "exit code   {}",
        j.exit_code.map_or("-".into(), |c| c.to_string())
    );
    println!(
        "duration    {}",
        j.duration_ms.map_or("-".into(), |d| format!("{d} ms"))
    );
    println!("history");
    for h in &j.history {
        println!(
            "  {}  {:<12} attempt {}{}{}",
            h.at,
            h.state,
            h.attempt,
            h.instance_id
                .as_deref()
                .map(|i| format!("  on {i}"))
                .unwrap_or_default(),
            h.exit_code
                .map(|c| format!("  exit {c}"))
                .unwrap_or_default(),
        );
    }
    Ok(())
}

async fn dlq_of(admin: &Admin) -> Result<Option<(String, u32)>, Failure> {
    let Some(p) = admin.redrive_policy().await.map_err(unavailable)? else {
        return Ok(None);
    };
    let url = admin.queue_url_of(&p.dlq_arn).await.map_err(unavailable)?;
    Ok(Some((url, p.max_receive_count)))
}

async fn queue(common: &Common) -> Result<(), Failure> {
    let s = settings(common, &ProcessEnv)?;
    let url = s.queue_url()?;
    let admin = Admin::new(s.sqs().await, url);
    let d = admin.depth(url).await.map_err(unavailable)?;
    println!("queue       {url}");
    println!("visible     {}", d.visible);
    println!("in flight   {}", d.in_flight);
    println!("delayed     {}", d.delayed);
    match dlq_of(&admin).await? {
        Some((dlq, max)) => {
            let dd = admin.depth(&dlq).await.map_err(unavailable)?;
            println!("dlq         {dlq} (after {max} receives)");
            println!("dlq depth   {}", dd.visible + dd.in_flight + dd.delayed);
        }
        None => println!("dlq         none (no redrive policy)"),
    }
    Ok(())
}

async fn redrive(common: &Common, yes: bool, limit: Option<u64>) -> Result<(), Failure> {
    let s = settings(common, &ProcessEnv)?;
    let url = s.queue_url()?;
    let admin = Admin::new(s.sqs().await, url);
    let Some((dlq, _)) = dlq_of(&admin).await? else {
        return Err(Failure::new(
            exit::USAGE,
            format!("queue {url} has no redrive policy, so no dead-letter queue to redrive from"),
        ));
    };
    let d = admin.depth(&dlq).await.map_err(unavailable)?;
    if !yes {
        println!(
            "{} messages in {dlq} ({} visible, {} in flight); nothing moved. Run again with --yes to move {} back to {url}.",
            d.visible + d.in_flight,
            d.visible,
            d.in_flight,
            limit.map_or("them".to_string(), |l| format!("up to {l} of them"))
        );
        return Ok(());
    }
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let moved = admin
        .redrive(&dlq, limit, |m| {
            if tty {
                eprint!("\rmoved {}", m.moved + m.duplicated);
            }
        })
        .await
        .map_err(unavailable)?;
    if tty {
        eprintln!();
    }
    if let Some(t) = s.table().await {
        let mut reset = 0;
        for id in &moved.job_ids {
            if table::requeue(&t, id).await.is_ok() {
                reset += 1;
            }
        }
        println!("tracking: {reset} dead-lettered jobs marked Queued again");
    }
    println!(
        "moved {} messages from {dlq} to {url}{}{}",
        moved.moved,
        if moved.duplicated > 0 {
            format!(
                "; {} sent but not deleted from the DLQ (now in both queues)",
                moved.duplicated
            )
        } else {
            String::new()
        },
        if moved.failed > 0 {
            format!("; {} could not be sent and stay in the DLQ", moved.failed)
        } else {
            String::new()
        },
    );
    if moved.failed > 0 || moved.duplicated > 0 {
        return Err(Failure::new(
            exit::UNAVAILABLE,
            "some messages were not moved cleanly (see above)",
        ));
    }
    Ok(())
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
