//! Instance metadata: who this instance is, and what the metadata service
//! says about its future (spot interruptions, rebalance recommendations,
//! the Auto Scaling target lifecycle state, scheduled maintenance).
//!
//! `identity` and `notice` parse (never panicking, whatever the bytes);
//! `watcher` polls and sends events to the supervisor. Reactions are
//! `decide::notice`'s.

pub mod identity;
pub mod notice;
pub mod watcher;
