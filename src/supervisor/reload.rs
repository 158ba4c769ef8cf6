//! Reload (SIGHUP): read the configuration again and apply what a running
//! agent can change. Which settings need a restart is the configuration's
//! one list (`Config::restart_only_changes` and
//! `Config::with_restart_only_from` read the same table).

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::{Config, ConfigError};
use crate::drain::output::LineBudget;
use crate::drain::slots::Slots;
use crate::status::counters::Counters;

/// Applies a reload. An invalid file is refused whole (logged, the running
/// configuration stays); a change to a restart-only setting is logged and
/// that setting keeps its running value; everything else takes effect now.
pub fn apply(
    reload: &(dyn Fn() -> Result<Config, ConfigError> + Send),
    config: &watch::Sender<Arc<Config>>,
    slots: &Slots,
    budget: &LineBudget,
    counters: &Counters,
) {
    let new = match reload() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "reload refused: the new configuration is invalid; keeping the running one");
            return;
        }
    };
    let running = config.borrow().clone();
    for (field, was, wanted) in running.restart_only_changes(&new) {
        tracing::warn!(field, running = %was, requested = %wanted, "reload: {field} changes only on restart; keeping the running value");
    }
    let applied = new.with_restart_only_from(&running);
    slots.resize(applied.job.concurrency);
    counters.set_slots(applied.job.concurrency);
    budget.set_rate(applied.job.log_lines_per_second);
    tracing::info!(
        slots = applied.job.concurrency,
        job_timeout = %applied.job.timeout,
        log_lines_per_second = applied.job.log_lines_per_second,
        "configuration reloaded"
    );
    config.send_replace(Arc::new(applied));
}
