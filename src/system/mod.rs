//! The process's edges with the operating system: signals in, sd_notify
//! (readiness, status, watchdog) out, logging (journald, text, JSON), the
//! clock's saturating arithmetic, and the privileges jobs run with.

pub mod clock;
pub mod logging;
pub mod notify;
pub mod privileges;
pub mod signals;
