//! systemd integration: readiness, status line, watchdog, stopping.
//!
//! All calls are no-ops outside systemd (no `NOTIFY_SOCKET`). The watchdog is
//! pinged from the agent's main loop only, so a wedged loop stops the pings
//! and systemd restarts the agent.

use std::time::Duration;

use sd_notify::NotifyState;

#[derive(Debug, Clone, Default)]
pub struct Notifier {
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` / `WATCHDOG_USEC` from the environment.
    pub fn from_env() -> Notifier {
        let mut usec = 0;
        let watchdog =
            sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec));
        Notifier { watchdog }
    }

    /// How often to ping: half the watchdog timeout, as systemd advises.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    fn send(&self, states: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(false, states) {
            tracing::debug!(error = %e, "sd_notify failed");
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }
    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }
    pub fn watchdog(&self) {
        if self.watchdog.is_some() {
            self.send(&[NotifyState::Watchdog]);
        }
    }
}
