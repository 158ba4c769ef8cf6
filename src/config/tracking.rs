//! `[tracking]`: job-state tracking in DynamoDB (README, "Job-state
//! tracking").

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration::Dur;

/// `[tracking]`: where job states are kept. Off by default.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingConfig {
    /// Write job states to the table. Producers (`drainerd enqueue`) write
    /// Queued, the agent the rest.
    #[serde(default)]
    pub enabled: bool,
    /// DynamoDB table name (partition key `job_id`, a string; create it with
    /// `drainerd table create`).
    #[serde(default = "TrackingConfig::default_table")]
    pub table: String,
    /// Region of the table. Default: the queue's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// DynamoDB endpoint override (emulators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// How long an item is kept after its last update (the table's TTL
    /// attribute `expires_at`; DynamoDB deletes expired items within days).
    #[serde(default = "TrackingConfig::default_ttl")]
    pub ttl: Dur,
    /// Updates the agent holds in memory while the table is slow; beyond
    /// this they are dropped (and counted), never waited for.
    #[serde(default = "TrackingConfig::default_queue_capacity")]
    pub queue_capacity: usize,
}

impl TrackingConfig {
    fn default_table() -> String {
        "drainerd-jobs".into()
    }
    fn default_ttl() -> Dur {
        Dur::secs(7 * 24 * 3600)
    }
    fn default_queue_capacity() -> usize {
        4096
    }
    /// # Errors
    /// A message naming the field, for exit 78.
    pub fn validate(&self) -> Result<(), String> {
        if self.table.trim().is_empty() {
            return Err("tracking.table is empty; set the DynamoDB table name".into());
        }
        if self.ttl.0 < Duration::from_secs(60) {
            return Err(format!(
                "tracking.ttl = {} is under a minute; keep items at least as long as jobs take (e.g. \"7d\")",
                self.ttl
            ));
        }
        if self.queue_capacity == 0 {
            return Err("tracking.queue_capacity is 0; set it to e.g. 4096".into());
        }
        Ok(())
    }
}

impl Default for TrackingConfig {
    fn default() -> Self {
        TrackingConfig {
            enabled: false,
            table: Self::default_table(),
            region: None,
            endpoint_url: None,
            ttl: Self::default_ttl(),
            queue_capacity: Self::default_queue_capacity(),
        }
    }
}
