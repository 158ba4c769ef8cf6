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

/// SDK configuration for one service: `region` if known (else the SDK's
/// chain: AWS_REGION, profile, instance metadata), `endpoint` for emulators.
pub async fn sdk_config(
    http: SharedHttpClient,
    region: Option<String>,
    endpoint: Option<&str>,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http);
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r));
    }
    if let Some(ep) = endpoint {
        loader = loader.endpoint_url(ep);
    }
    loader.load().await
}
