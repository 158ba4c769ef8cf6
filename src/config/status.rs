//! `[status]`: the status page, `/metrics` and the control buttons
//! (README, "Observing drainerd").

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration::Dur;

/// The well-known port: "DRAINERD" has no port of its own; 9753 is unused by
/// the common exporters (Prometheus' port registry lists none there).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9753";

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    /// Serve the page, `/status.json`, `/metrics`, `/healthz` and `/readyz`.
    #[serde(default = "StatusConfig::default_enabled")]
    pub enabled: bool,
    /// Address and port. Loopback by default; to let Prometheus scrape from
    /// another host, listen on `0.0.0.0:9753` and restrict the port with the
    /// instance's security group.
    #[serde(default = "StatusConfig::default_listen")]
    pub listen: String,
    /// Queue, DLQ and group figures are re-read at most this often, and
    /// only while someone looks (a page view or scrape in the last few
    /// intervals): viewers never cause requests of their own.
    #[serde(default = "StatusConfig::default_refresh_interval")]
    pub refresh_interval: Dur,
    /// Enables the spawn and leave buttons. Send it as `Authorization:
    /// Bearer TOKEN`, as `X-Drainerd-Token`, or as the form field `token`.
    /// At least 16 characters. Without it the buttons answer 403.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_token: Option<String>,
    /// Button presses accepted per minute, all buttons together; more
    /// answer 429.
    #[serde(default = "StatusConfig::default_actions_per_minute")]
    pub actions_per_minute: u32,
}

impl StatusConfig {
    fn default_enabled() -> bool {
        true
    }
    fn default_listen() -> String {
        DEFAULT_LISTEN.into()
    }
    fn default_refresh_interval() -> Dur {
        Dur::secs(15)
    }
    fn default_actions_per_minute() -> u32 {
        6
    }

    /// The listen address (validated at load).
    pub fn addr(&self) -> SocketAddr {
        self.listen.parse().unwrap_or_else(|_| {
            DEFAULT_LISTEN
                .parse()
                .expect("the default address is valid")
        })
    }

    /// `(field, problem, fix)` for the first invalid field.
    pub(crate) fn problem(&self) -> Option<(&'static str, String, &'static str)> {
        if self.listen.parse::<SocketAddr>().is_err() {
            return Some((
                "status.listen",
                format!("is {:?}, not an address:port", self.listen),
                "write an IP address and port, e.g. \"127.0.0.1:9753\" or \"0.0.0.0:9753\"",
            ));
        }
        if self.refresh_interval.0 < Duration::from_secs(1) {
            return Some((
                "status.refresh_interval",
                format!("is {}", self.refresh_interval),
                "set it to 1s or more (15s is plenty)",
            ));
        }
        if let Some(t) = &self.control_token {
            if t.len() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Some((
                    "status.control_token",
                    "is shorter than 16 characters or contains spaces".into(),
                    "use a long random string, e.g. `openssl rand -hex 24`, or remove it to disable the buttons",
                ));
            }
        }
        if self.actions_per_minute == 0 {
            return Some((
                "status.actions_per_minute",
                "is 0".into(),
                "set it to 1 or more; to disable the buttons, remove status.control_token",
            ));
        }
        None
    }
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            enabled: Self::default_enabled(),
            listen: Self::default_listen(),
            refresh_interval: Self::default_refresh_interval(),
            control_token: None,
            actions_per_minute: Self::default_actions_per_minute(),
        }
    }
}
