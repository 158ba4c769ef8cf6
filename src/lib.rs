//! drainerd: drains an SQS queue into child processes on an EC2 Auto Scaling
//! worker fleet, losing no message on any path.
//!
//! A map of the house, one folder per concern:
//!
//! | folder        | owns |
//! |---------------|------|
//! | `cli`         | the command line's definition: `main` parses it; the man pages and completions are generated from it |
//! | `config/`     | what the operator asked for: the file, `DRAINERD_*` overrides, durations, validation |
//! | `control`     | the control inbox (signals, notices, leaving) and the one shutdown tree every task runs under |
//! | `supervisor/` | the drain's state machine, wiring at start, reload, the terminate lifecycle hook |
//! | `decide/`     | pure decisions: backoff, leases, job outcomes, notices, leaving, protection, batching |
//! | `drain/`      | the queue's path through this instance: receive, run, renew, settle; job slots and occupancy |
//! | `aws/`        | the only agent code that talks to AWS: SQS, Auto Scaling, instance metadata |
//! | `fleet/`      | this instance's place in its group: protection, leaving, the page's fleet buttons |
//! | `metadata/`   | the instance metadata watcher and its notice parsing |
//! | `status/`     | counters, the status page, `/status.json` and `/metrics` |
//! | `tracking/`   | the optional job-state store (DynamoDB) |
//! | `system/`     | the process's edges: signals, sd_notify, logging |
//! | `ops/`        | the producer and operator side: enqueue library, CLI commands, admin, cost model |
//!
//! Dependencies run inward: `decide` imports nothing of drainerd's and no
//! runtime; the drain never imports `ops`; only `aws/` (with `ops/` and
//! `tracking/`) names AWS SDK crates. `tests/house.rs` checks these rules.
#![forbid(unsafe_code)]

pub mod aws;
pub mod cli;
pub mod config;
pub mod control;
pub mod decide;
pub mod drain;
pub mod fleet;
pub mod metadata;
pub mod ops;
pub mod status;
pub mod supervisor;
pub mod system;
pub mod tracking;

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
