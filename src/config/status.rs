//! `[status]`: the status page, `/metrics` and the control buttons
//! (README, "Observing drainerd").

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::duration::Dur;
use super::secret::Secret;

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
    /// 16 to 512 characters. Without it the buttons answer 403. A secret:
    /// never shown in logs, `check-config` or `/status.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_token: Option<Secret>,
    /// Button presses accepted per minute, all buttons together; more
    /// answer 429.
    #[serde(default = "StatusConfig::default_actions_per_minute")]
    pub actions_per_minute: u32,
    /// Host names the page answers to, besides the ones it always answers
    /// to: `localhost`, loopback addresses and the listen address (any IP
    /// address when listening on 0.0.0.0 or `::`). A request naming another
    /// host is refused (403), so a web page cannot read the status page
    /// through DNS rebinding (a name of the attacker's that resolves to
    /// 127.0.0.1). Add the names Prometheus or people use, e.g.
    /// `["ip-10-0-1-23.ec2.internal"]`; `"*"` turns the check off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
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
        if let Some(t) = &self.control_token {
            let t = t.expose();
            let n = t.chars().count();
            if !(16..=512).contains(&n) || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Some((
                    "status.control_token",
                    "is not 16 to 512 characters, or contains spaces (its value is not shown)".into(),
                    "use a long random string, e.g. `openssl rand -hex 24`, or remove it to disable the buttons",
                ));
            }
        }
        for h in &self.allowed_hosts {
            let ok = h == "*"
                || (!h.is_empty()
                    && h.len() <= 253
                    && h.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']')
                    }));
            if !ok {
                return Some((
                    "status.allowed_hosts",
                    format!("has {h:?}, not a host name"),
                    "list host names or addresses without port or scheme, e.g. [\"ip-10-0-1-23.ec2.internal\"], or \"*\" to allow any",
                ));
            }
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
            allowed_hosts: Vec::new(),
        }
    }
}
