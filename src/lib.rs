//! drainerd: drains an SQS queue into child processes on an EC2 Auto Scaling
//! worker fleet, losing no message on any path.
//!
//! One module per concern: `config` (+`env`, `duration`) what the operator
//! asked for; `queue` the SQS edge; `job` one child process; `output` its
//! logs; `receiver` intake; `runner` one message's life; `settle` deletes and hand-backs;
//! `heartbeat` lease renewals; `slots` job slots; `policy` the pure timing
//! decisions; `agent` the supervisor; `notify`, `logging`, `signals` the
//! systemd and process edges; `stats` what happened.
#![forbid(unsafe_code)]

pub mod agent;
pub mod aws;
pub mod cli;
pub mod client;
pub mod config;
pub mod cost;
pub mod duration;
pub mod env;
pub mod fleet;
pub mod heartbeat;
pub mod job;
pub mod leave;
pub mod logging;
pub mod membership;
pub mod metadata;
pub mod notice;
pub mod notify;
pub mod output;
pub mod policy;
pub mod queue;
pub mod receiver;
pub mod runner;
pub mod settle;
pub mod signals;
pub mod slots;
pub mod startup;
pub mod stats;
pub mod status;
pub mod tracking;
pub mod web;

/// Exit codes (sysexits.h), as documented in the README.
pub mod exit {
    /// Bad configuration: fix the named field.
    pub const CONFIG: i32 = 78;
    /// The queue is missing or unreachable at start.
    pub const UNAVAILABLE: i32 = 69;
    /// Bad command-line usage (client commands).
    pub const USAGE: i32 = 64;
    /// Some input was malformed or some jobs were not queued (client commands).
    pub const DATAERR: i32 = 65;
    /// An input file could not be read (client commands).
    pub const NOINPUT: i32 = 66;
    /// An internal error (a bug): please report it.
    pub const SOFTWARE: i32 = 70;
}
