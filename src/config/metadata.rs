//! `[metadata]`: what drainerd reads from instance metadata (IMDSv2) and
//! what it does about each notice (README, "Interruptions and other
//! notices").

use serde::{Deserialize, Serialize};

use super::duration::Dur;
pub use crate::decide::notice::{MaintenanceAction, RebalanceAction, SpotSignal};

/// The EC2 instance metadata service (IMDSv2): who this instance is, and
/// notices about its end.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataConfig {
    /// Off for machines outside EC2: no identity, no interruption notices.
    #[serde(default = "MetadataConfig::default_enabled")]
    pub enabled: bool,
    /// Metadata service URL. Default: the SDK's (http://169.254.169.254, or
    /// AWS_EC2_METADATA_SERVICE_ENDPOINT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// How often the notice paths are polled (at least 1 s; AWS advises 5 s).
    #[serde(default = "MetadataConfig::default_poll_interval")]
    pub poll_interval: Dur,
    /// Safety margin before a spot interruption's time: every message is
    /// settled by `time - spot_margin`.
    #[serde(default = "MetadataConfig::default_spot_margin")]
    pub spot_margin: Dur,
    #[serde(default = "MetadataConfig::default_spot_signal_jobs")]
    pub spot_signal_jobs: SpotSignal,
    #[serde(default = "MetadataConfig::default_rebalance")]
    pub rebalance: RebalanceAction,
    #[serde(default = "MetadataConfig::default_maintenance")]
    pub maintenance: MaintenanceAction,
    /// With `maintenance = "drain"`: how long before NotBefore to drain.
    #[serde(default = "MetadataConfig::default_maintenance_lead")]
    pub maintenance_lead: Dur,
}

impl MetadataConfig {
    fn default_enabled() -> bool {
        true
    }
    fn default_poll_interval() -> Dur {
        Dur::secs(5)
    }
    fn default_spot_margin() -> Dur {
        Dur::secs(15)
    }
    fn default_spot_signal_jobs() -> SpotSignal {
        SpotSignal::AtDeadline
    }
    fn default_rebalance() -> RebalanceAction {
        RebalanceAction::Log
    }
    fn default_maintenance() -> MaintenanceAction {
        MaintenanceAction::Log
    }
    fn default_maintenance_lead() -> Dur {
        Dur::secs(600)
    }
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            enabled: Self::default_enabled(),
            endpoint: None,
            poll_interval: Self::default_poll_interval(),
            spot_margin: Self::default_spot_margin(),
            spot_signal_jobs: Self::default_spot_signal_jobs(),
            rebalance: Self::default_rebalance(),
            maintenance: Self::default_maintenance(),
            maintenance_lead: Self::default_maintenance_lead(),
        }
    }
}
