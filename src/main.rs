//! drainerd's command line: parse, load the configuration, run, map errors
//! to exit codes. Everything else lives in the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use drainerd::config::overrides::ProcessEnv;
use drainerd::config::Config;
use drainerd::exit;
use drainerd::supervisor::{self, AgentError};
use drainerd::system::logging::{self, LogFormat};
use drainerd::system::privileges;

const EXAMPLES: &str = "\
Examples:
  drainerd run                                  # uses /etc/drainerd/drainerd.toml
  drainerd run --config ./drainerd.toml --log-format json
  drainerd check-config --config /etc/drainerd/reports.toml
  DRAINERD_QUEUE_URL=https://sqs.us-east-1.amazonaws.com/123456789012/jobs \\
  DRAINERD_JOB_COMMAND='[\"/usr/local/bin/worker\"]' drainerd run

  drainerd enqueue --queue URL --attr tenant=acme 'report 42'
  drainerd enqueue --from-file jobs.jsonl
  drainerd queue; drainerd dlq redrive --yes; drainerd cost --run-time 30s

Exit codes: 0 stopped cleanly, 78 bad configuration, 69 queue missing or
unreachable at start, 70 internal error; client commands also 64 usage,
65 some jobs not queued, 66 input file unreadable.";

#[derive(Parser)]
#[command(name = "drainerd", version, about = "Drains an SQS queue into child processes, losing nothing", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drain the queue until SIGTERM.
    Run {
        /// Configuration file.
        #[arg(
            long,
            env = "DRAINERD_CONFIG",
            default_value = "/etc/drainerd/drainerd.toml"
        )]
        config: PathBuf,
        /// Log output.
        #[arg(long, env = "DRAINERD_LOG_FORMAT", value_enum, default_value = "auto")]
        log_format: LogFormat,
    },
    /// Validate the configuration and print it, secrets redacted (exit 0 or 78).
    CheckConfig {
        /// Configuration file.
        #[arg(
            long,
            env = "DRAINERD_CONFIG",
            default_value = "/etc/drainerd/drainerd.toml"
        )]
        config: PathBuf,
    },
    /// Producer and operator commands (enqueue, job, queue, dlq, table, cost).
    #[command(flatten)]
    Client(drainerd::ops::cli::ClientCommand),
}

fn main() -> ExitCode {
    // Usage errors exit 64 (EX_USAGE), as the README documents; help and
    // --version exit 0.
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            let code = if e.use_stderr() { exit::USAGE } else { 0 };
            return ExitCode::from(code as u8);
        }
    };
    match cli.command {
        Command::CheckConfig { config } => match Config::load_with_warnings(&config, &ProcessEnv) {
            Ok((c, warnings)) => {
                print!("{}", c.to_redacted_toml());
                for w in warnings {
                    eprintln!("drainerd: warning: environment: {w}");
                }
                // A warning, not exit 78: the command is often installed
                // after the configuration (an image bake, an Ansible
                // play validating its template), and the agent runs anyway:
                // it takes no work while jobs cannot start. Checked as this
                // user; the service runs as its own.
                if let Err(e) = drainerd::drain::process::can_start(
                    &c.job.command[0],
                    c.job.working_dir.as_deref(),
                ) {
                    eprintln!(
                        "drainerd: warning: config {}: job.command cannot start here: {e}; install it, fix the path, or make it executable (until then drainerd takes no work)",
                        config.display()
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("drainerd: {e}");
                ExitCode::from(exit::CONFIG as u8)
            }
        },
        Command::Run { config, log_format } => run(config, log_format),
        Command::Client(cmd) => drainerd::ops::cli::run(cmd),
    }
}

fn run(path: PathBuf, log_format: LogFormat) -> ExitCode {
    let (config, warnings) = match Config::load_with_warnings(&path, &ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("drainerd: {e}");
            return ExitCode::from(exit::CONFIG as u8);
        }
    };
    logging::init(log_format, &config.agent.log_level);
    for w in warnings {
        tracing::warn!("environment: {w}");
    }
    // Before the runtime: capabilities are per thread, and no other
    // thread may exist yet (system::privileges).
    let run_as = match privileges::resolve(&config.job).and_then(|r| {
        if let Some(r) = &r {
            privileges::prepare(r)?;
            tracing::info!(user = %r.user, uid = r.uid, gid = r.gid, "jobs run as another user");
        }
        Ok(r)
    }) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "bad configuration");
            eprintln!("drainerd: config {}: {e}", path.display());
            return ExitCode::from(exit::CONFIG as u8);
        }
    };
    // One thread is plenty: the agent waits on SQS and children, and a
    // single-threaded runtime keeps its CPU cost per job at the floor.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("drainerd: cannot start the runtime: {e}");
            return ExitCode::from(exit::SOFTWARE as u8);
        }
    };
    let mut config = config;
    if let Err(e) = rt.block_on(supervisor::wiring::resolve_instance_tags(&mut config)) {
        tracing::error!(error = %e, "bad configuration");
        eprintln!("drainerd: config {}: {e}", path.display());
        return ExitCode::from(exit::CONFIG as u8);
    }
    let result = rt.block_on(supervisor::run(config, path, run_as));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ (AgentError::QueueMissing { .. } | AgentError::QueueUnreachable { .. })) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("drainerd: {e}");
            ExitCode::from(exit::UNAVAILABLE as u8)
        }
        Err(e @ AgentError::Internal(_)) => {
            tracing::error!(error = %e, "stopped on an internal error");
            ExitCode::from(exit::SOFTWARE as u8)
        }
    }
}
