//! Instance metadata (IMDSv2) for the agent, through aws-config's client
//! (token handling, retries of 5xx/401, its own connect and read timeouts).
//! GETs only; a 404 comes back as `None`. Parsing and deciding are
//! `metadata/`'s and `decide/`'s.

use std::sync::Arc;

use aws_config::imds;
use aws_config::imds::client::error::ImdsError;

use crate::config::MetadataConfig;
use crate::status::counters::Counters;

pub const SPOT: &str = "/latest/meta-data/spot/instance-action";
pub const REBALANCE: &str = "/latest/meta-data/events/recommendations/rebalance";
pub const LIFECYCLE: &str = "/latest/meta-data/autoscaling/target-lifecycle-state";
pub const MAINTENANCE: &str = "/latest/meta-data/events/maintenance/scheduled";
pub const IDENTITY: &str = "/latest/dynamic/instance-identity/document";

/// What a metadata path reads, as a metrics label.
fn path_label(path: &str) -> &'static str {
    match path {
        SPOT => "spot",
        REBALANCE => "rebalance",
        LIFECYCLE => "lifecycle",
        MAINTENANCE => "maintenance",
        IDENTITY => "identity",
        p if p.contains("/tags/instance/") => "tags",
        _ => "other",
    }
}

/// The metadata service client.
pub struct Imds {
    client: imds::Client,
    counters: Arc<Counters>,
}

impl Imds {
    /// # Errors
    /// The endpoint is not a valid URL.
    pub fn new(
        cfg: &MetadataConfig,
        http: aws_smithy_runtime_api::client::http::SharedHttpClient,
        counters: Arc<Counters>,
    ) -> Result<Imds, String> {
        let provider =
            aws_config::provider_config::ProviderConfig::default().with_http_client(http);
        // Two attempts per request: the watcher's own next poll is the real
        // retry, and failures show up in the log instead of being hidden
        // in long client-side backoffs.
        let mut b = imds::Client::builder().configure(&provider).max_attempts(2);
        if let Some(ep) = &cfg.endpoint {
            b = b
                .endpoint(ep)
                .map_err(|e| format!("metadata.endpoint {ep:?}: {e}"))?;
        }
        Ok(Imds {
            client: b.build(),
            counters,
        })
    }

    /// GETs `path`: `Ok(None)` for 404.
    ///
    /// # Errors
    /// Anything but a success or a 404, described.
    pub async fn get(&self, path: &str) -> Result<Option<String>, String> {
        let r = self.client.get(path).await;
        let ok = r.is_ok()
            || matches!(&r, Err(ImdsError::ErrorResponse(e)) if e.response().status().as_u16() == 404);
        self.counters.metadata.add(path_label(path), ok);
        match r {
            Ok(body) => Ok(Some(body.as_ref().to_string())),
            Err(ImdsError::ErrorResponse(e)) if e.response().status().as_u16() == 404 => Ok(None),
            Err(ImdsError::ErrorResponse(e)) => {
                Err(format!("HTTP {}", e.response().status().as_u16()))
            }
            Err(e) => Err(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()),
        }
    }

    /// Reads the identity document.
    ///
    /// # Errors
    /// The document could not be fetched or understood.
    pub async fn identity(&self) -> Result<crate::metadata::identity::Identity, String> {
        match self.get(IDENTITY).await? {
            Some(body) => crate::metadata::identity::parse(&body),
            None => Err("identity document not found (404)".into()),
        }
    }
}
