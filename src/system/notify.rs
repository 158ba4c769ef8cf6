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
        Notifier {
            watchdog: watchdog_from(
                std::env::var("WATCHDOG_USEC").ok().as_deref(),
                std::env::var("WATCHDOG_PID").ok().as_deref(),
                std::process::id(),
            ),
        }
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
        self.send(&[NotifyState::Ready, NotifyState::Status(&one_line(status))]);
    }
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(&one_line(status))]);
    }
    pub fn stopping(&self, status: &str) {
        self.send(&[
            NotifyState::Stopping,
            NotifyState::Status(&one_line(status)),
        ]);
    }
    pub fn watchdog(&self) {
        if self.watchdog.is_some() {
            self.send(&[NotifyState::Watchdog]);
        }
    }
}

/// The longest `STATUS=` text sent (systemctl status shows one line).
const STATUS_MAX: usize = 400;

/// `status` as one `STATUS=` line: each control character (a newline would
/// start another assignment, such as `READY=1` or `MAINPID=`) becomes a
/// space, and the text is cut at [`STATUS_MAX`] characters. The status
/// carries text from instance metadata (a maintenance event's code).
pub fn one_line(status: &str) -> String {
    status
        .chars()
        .take(STATUS_MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// libsystemd's rule (sd_watchdog_enabled): the watchdog is on when
/// `WATCHDOG_USEC` is a positive number and `WATCHDOG_PID`, if set, is us.
/// (sd-notify's own helper insists on `WATCHDOG_PID`, which systemd omits
/// in some set-ups.)
fn watchdog_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    match pid.map(|p| p.trim().parse::<u32>()) {
        None => Some(Duration::from_micros(usec)),
        Some(Ok(p)) if p == me => Some(Duration::from_micros(usec)),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_cannot_add_assignments() {
        let s = one_line("maintenance x\nREADY=1\r\nMAINPID=1\u{0}");
        assert!(
            !s.contains('\n') && !s.contains('\r') && !s.contains('\0'),
            "{s:?}"
        );
        assert!(s.starts_with("maintenance x READY=1"));
        assert_eq!(one_line(&"é".repeat(1000)).chars().count(), STATUS_MAX);
    }

    #[test]
    fn watchdog_follows_libsystemd() {
        assert_eq!(
            watchdog_from(Some("2000000"), None, 7),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            watchdog_from(Some("2000000"), Some("7"), 7),
            Some(Duration::from_secs(2))
        );
        assert_eq!(watchdog_from(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(None, Some("7"), 7), None);
    }
}
