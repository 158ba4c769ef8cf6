//! drainerd's command line: parse, load the configuration, run, map errors
//! to exit codes. Everything else lives in the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use drainerd::cli::{Cli, Command};
use drainerd::config::overrides::ProcessEnv;
use drainerd::config::Config;
use drainerd::exit;
use drainerd::supervisor::{self, AgentError};
use drainerd::system::logging::{self, LogFormat};
use drainerd::system::privileges;

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
