//! What the agent shows: the counters it keeps, the status page, the
//! `/status.json` document, Prometheus `/metrics`, and the health and
//! readiness probes.
//!
//! - `counters`: what happened (display only: nothing decides from them);
//! - `board`: the queue and group figures, read only while someone looks;
//! - `history`: the last hour by minute (jobs ended, queue depth);
//! - `snapshot`: everything shown, built in one place;
//! - `page`, `metrics`: its two renderings; `server`: the HTTP edge and
//!   the buttons' guards (the buttons themselves are the fleet task's).

pub mod board;
pub mod counters;
pub mod history;
pub mod metrics;
pub mod page;
pub mod server;
pub mod snapshot;
pub mod tally;

pub use board::{Board, Figures};
pub use snapshot::{snapshot, InstanceInfo, Liveness, Snapshot, WEDGED_AFTER};
