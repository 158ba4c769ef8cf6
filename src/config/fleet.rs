//! `[fleet]`: this instance's place in its Auto Scaling group (README,
//! "Leaving the group").

use serde::{Deserialize, Serialize};

use super::duration::Dur;
use crate::decide::leave::Billing;

/// This instance's Auto Scaling group: the terminate hook, scale-in
/// protection while busy, and leaving the group when work is scarce.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// Auto Scaling endpoint override (emulators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Name of the group's terminate lifecycle hook (transition
    /// autoscaling:EC2_INSTANCE_TERMINATING). When set, drainerd keeps the
    /// hook alive while it drains and completes it with CONTINUE when done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_hook: Option<String>,
    /// How often to send RecordLifecycleActionHeartbeat while draining; keep
    /// it well below the hook's heartbeat timeout (30 s .. 2 h).
    #[serde(default = "FleetConfig::default_lifecycle_heartbeat_interval")]
    pub lifecycle_heartbeat_interval: Dur,
    /// When leaving saves money: "per-second" (leave after idle_timeout),
    /// "hourly" (leave only in the last hourly_window of a paid hour), or
    /// "never" (manage scale-in protection only).
    #[serde(default = "FleetConfig::default_billing")]
    pub billing: Billing,
    /// per-second billing: leave after this long without work. Must be above
    /// 0 (to never leave, say billing = "never").
    #[serde(default = "FleetConfig::default_idle_timeout")]
    pub idle_timeout: Dur,
    /// Never leave before the instance is this old.
    #[serde(default = "FleetConfig::default_min_lifetime")]
    pub min_lifetime: Dur,
    /// Work is scarce when the queue's visible backlog per InService
    /// instance is at or below this.
    #[serde(default)]
    pub backlog_per_instance: f64,
    /// hourly billing: leave only this long before the next whole hour since
    /// launch.
    #[serde(default = "FleetConfig::default_hourly_window")]
    pub hourly_window: Dur,
    /// Turn scale-in protection on while busy, off after protection_linger idle.
    #[serde(default = "FleetConfig::default_protect_while_busy")]
    pub protect_while_busy: bool,
    /// Idle time before protection is dropped (so bursts don't flap it).
    #[serde(default = "FleetConfig::default_protection_linger")]
    pub protection_linger: Dur,
    /// How often the stay/leave decision is taken.
    #[serde(default = "FleetConfig::default_check_interval")]
    pub check_interval: Dur,
    /// Log every decision and would-be Auto Scaling call without making it.
    #[serde(default)]
    pub dry_run: bool,
    /// After the terminate request, power off through systemd if the
    /// platform has not stopped the instance within this long. Needs
    /// permission to run `systemctl poweroff` (see README).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poweroff_after: Option<Dur>,
}

impl FleetConfig {
    /// The leave decision's rules, as the agent and the simulator feed it.
    pub fn leave_rules(&self) -> crate::decide::leave::Rules {
        crate::decide::leave::Rules {
            billing: self.billing,
            idle_timeout: self.idle_timeout.0,
            min_lifetime: self.min_lifetime.0,
            backlog_per_instance: self.backlog_per_instance,
            hourly_window: self.hourly_window.0,
        }
    }

    fn default_lifecycle_heartbeat_interval() -> Dur {
        Dur::secs(60)
    }
    fn default_billing() -> Billing {
        Billing::PerSecond
    }
    fn default_idle_timeout() -> Dur {
        Dur::secs(600)
    }
    fn default_min_lifetime() -> Dur {
        Dur::secs(300)
    }
    fn default_hourly_window() -> Dur {
        Dur::secs(300)
    }
    fn default_protect_while_busy() -> bool {
        true
    }
    fn default_protection_linger() -> Dur {
        Dur::secs(120)
    }
    fn default_check_interval() -> Dur {
        Dur::secs(30)
    }
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            endpoint_url: None,
            lifecycle_hook: None,
            lifecycle_heartbeat_interval: Self::default_lifecycle_heartbeat_interval(),
            billing: Self::default_billing(),
            idle_timeout: Self::default_idle_timeout(),
            min_lifetime: Self::default_min_lifetime(),
            backlog_per_instance: 0.0,
            hourly_window: Self::default_hourly_window(),
            protect_while_busy: Self::default_protect_while_busy(),
            protection_linger: Self::default_protection_linger(),
            check_interval: Self::default_check_interval(),
            dry_run: false,
            poweroff_after: None,
        }
    }
}
