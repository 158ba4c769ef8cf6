//! The producer and operator side: everything `drainerd` does besides
//! running the agent.
//!
//! - `enqueue`: the library producers use to enqueue jobs (and read their
//!   tracked state);
//! - `cli`: the client commands (`enqueue`, `job`, `queue`, `dlq`, `table`,
//!   `cost`, `simulate`);
//! - `admin`: queue depths and moving dead-lettered messages back;
//! - `table`: the job-state table (create, read, requeue);
//! - `cost`: the cost-per-job model;
//! - `simulate`: the fleet simulation behind `drainerd simulate`.
//!
//! The agent's drain never imports this module.

pub mod admin;
pub mod cli;
pub mod cost;
pub mod enqueue;
pub mod simulate;
pub mod table;
