//! The agent's AWS edge: the only agent code that names an AWS SDK crate.
//!
//! `sqs` (the drain's queue calls and the queue's attributes),
//! `autoscaling` (this instance's group), `imds` (instance metadata), and
//! the shared set-up here: one HTTP client (rustls with ring: one TLS
//! stack) and the usual credential/region chain. These modules make calls
//! and count them; they decide nothing.

pub mod autoscaling;
pub mod figures;
pub mod imds;
pub mod sqs;

use std::time::Duration;

use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// The HTTP client type every AWS call shares.
pub type HttpClient = SharedHttpClient;

/// The HTTPS client every AWS call goes through.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// How long one AWS call may take: each attempt, and the whole operation
/// with the SDK's retries (standard mode: up to 3 attempts, exponential
/// backoff with jitter). A call that runs out fails like any other error,
/// so no task ever waits on a connection that stopped answering (README,
/// "When the network stops answering").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub attempt: Duration,
    pub operation: Duration,
}

/// Connecting never takes longer than this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Every call but the long poll: deletes, visibility changes, queue
/// attributes, Auto Scaling, DynamoDB. A few seconds per attempt is ample
/// for a request that SQS answers in milliseconds.
pub const CALL: Bounds = Bounds {
    attempt: Duration::from_secs(4),
    operation: Duration::from_secs(10),
};

/// ReceiveMessage: the longest long poll SQS allows (20 s) plus a margin
/// per attempt. (The receiver also bounds the whole receive itself.)
pub const LONG_POLL: Bounds = Bounds {
    attempt: Duration::from_secs(20 + 5),
    operation: Duration::from_secs(20 + 10),
};

impl Bounds {
    /// As the SDK takes them.
    pub fn timeouts(self) -> aws_config::timeout::TimeoutConfig {
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

/// SDK configuration for one service: `region` if known (else the SDK's
/// chain: AWS_REGION, profile, instance metadata), `endpoint` for
/// emulators, every call bounded by [`CALL`] (a client may override it).
pub async fn sdk_config(
    http: SharedHttpClient,
    region: Option<String>,
    endpoint: Option<&str>,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(CALL.timeouts());
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r));
    }
    if let Some(ep) = endpoint {
        loader = loader.endpoint_url(ep);
    }
    loader.load().await
}
