//! The command line's definition: what `main` parses, and what the man
//! pages and shell completions are generated from at packaging time
//! (`packaging/gen`). Only the definition lives here; `main` acts on it,
//! and nothing here generates anything (the agent binary ships no
//! generator code).

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use crate::system::logging::LogFormat;

/// How it is used, for `--help` and the man page.
pub const EXAMPLES: &str =
    "  drainerd run                                  # uses /etc/drainerd/drainerd.toml
  drainerd run --config ./drainerd.toml --log-format json
  drainerd check-config --config /etc/drainerd/reports.toml
  DRAINERD_QUEUE_URL=https://sqs.us-east-1.amazonaws.com/123456789012/jobs \\
  DRAINERD_JOB_COMMAND='[\"/usr/local/bin/worker\"]' drainerd run

  drainerd enqueue --queue URL --attr tenant=acme 'report 42'
  drainerd enqueue --from-file jobs.jsonl
  drainerd queue; drainerd dlq redrive --yes; drainerd cost --run-time 30s";

/// What the exit codes mean, for `--help` and the man page.
pub const EXIT_CODES: &str = "\
0 stopped cleanly, 78 bad configuration, 69 queue missing or
unreachable at start, 70 internal error; client commands also 64 usage,
65 some jobs not queued, 66 input file unreadable.";

/// drainerd's command line.
#[derive(Parser)]
#[command(name = "drainerd", version, about = "Drains an SQS queue into child processes, losing nothing", after_help = format!("Examples:\n{EXAMPLES}\n\nExit codes: {EXIT_CODES}"))]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    Client(crate::ops::cli::ClientCommand),
}

/// The whole command tree, for the man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_definition_is_consistent() {
        // clap's own checks (conflicting names, bad defaults, ...), which
        // otherwise only run when a command line is parsed.
        super::command().debug_assert();
    }
}
