//! The queue's path through this instance: receive, run, renew, settle.
//!
//! - `receiver`: intake — long-polls for as many messages as there are free
//!   `slots`, starts a job task (`runner`) per message;
//! - `runner`: one message's life — run its `process`, decide its fate,
//!   hand it to the settler; `output` forwards the job's output to the log;
//! - `heartbeat`: keeps running jobs' messages invisible;
//! - `settle`: deletes and hand-backs, batched and retried;
//! - `occupancy`: what the drain holds right now, kept by guards; what the
//!   fleet task reads before it leaves the group;
//! - `queue`: the seam to SQS (the calls above, as a trait).
//!
//! The drain never imports the producer side (`ops/`) and talks to SQS only
//! through [`queue::Queue`].

pub mod groups;
pub mod heartbeat;
pub mod occupancy;
pub mod output;
pub mod process;
pub mod queue;
pub mod receiver;
pub mod runner;
pub mod settle;
pub mod slots;

#[cfg(test)]
mod fake;
