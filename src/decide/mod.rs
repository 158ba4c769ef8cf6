//! Pure decisions: plain values in, plain values out.
//!
//! Every choice drainerd makes about a message, a job, a notice or its
//! place in the fleet is a function here: how long a failed message stays
//! hidden, how far a lease is extended, what a job's exit means for its
//! message, which deletes go now, what a notice asks for, whether to stay
//! protected, whether to leave. The tasks that talk to SQS, Auto Scaling,
//! instance metadata and child processes gather the inputs and carry the
//! result out.
//!
//! This module must never do I/O, read a clock or import tokio or an AWS
//! crate; `tests/house.rs` checks the imports. Times come in as arguments
//! (`SystemTime` for wall-clock facts, `Duration` for spans), so every
//! function is unit- and property-tested without a runtime.

pub mod backoff;
pub mod batching;
pub mod capacity;
pub mod intake;
pub mod lease;
pub mod leave;
pub mod notice;
pub mod outcome;
pub mod protection;
