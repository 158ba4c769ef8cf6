//! The process's edges with the operating system: signals in, sd_notify
//! (readiness, status, watchdog) out, and logging (journald, text, JSON).

pub mod logging;
pub mod notify;
pub mod signals;
