//! The instance metadata edge (IMDSv2, through aws-config's client): who
//! this instance is, and a watcher that polls the notice paths.
//!
//! This module fetches and parses; it decides nothing. Events go to the
//! agent, which reacts (see `policy::reaction`). A 404 means "no notice";
//! errors, 401s, throttling and garbage are logged (without flooding) and
//! survived: the queue keeps draining whatever the metadata service does.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::imds;
use aws_config::imds::client::error::ImdsError;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::agent::Control;
use crate::config::MetadataConfig;
use crate::notice::{self, Event, Seen, Tracker};
use crate::stats::Stats;

pub const SPOT: &str = "/latest/meta-data/spot/instance-action";
pub const REBALANCE: &str = "/latest/meta-data/events/recommendations/rebalance";
pub const LIFECYCLE: &str = "/latest/meta-data/autoscaling/target-lifecycle-state";
pub const MAINTENANCE: &str = "/latest/meta-data/events/maintenance/scheduled";
const IDENTITY: &str = "/latest/dynamic/instance-identity/document";

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

/// Who this instance is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub instance_id: String,
    pub region: String,
    pub availability_zone: String,
    pub instance_type: String,
    /// `pendingTime`: launch (or last start) time; decides billing hours.
    pub launch_time: Option<SystemTime>,
}

/// Parses the identity document.
///
/// # Errors
/// A description of what is missing or malformed.
pub fn parse_identity(body: &str) -> Result<Identity, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    Ok(Identity {
        instance_id: field("instanceId").ok_or("no instanceId")?,
        region: field("region").ok_or("no region")?,
        availability_zone: field("availabilityZone").unwrap_or_default(),
        instance_type: field("instanceType").unwrap_or_default(),
        launch_time: field("pendingTime").and_then(|t| humantime::parse_rfc3339_weak(&t).ok()),
    })
}

/// The metadata service client.
pub struct Metadata {
    client: imds::Client,
    stats: Arc<Stats>,
}

impl Metadata {
    /// # Errors
    /// The endpoint is not a valid URL.
    pub fn new(
        cfg: &MetadataConfig,
        http: aws_smithy_runtime_api::client::http::SharedHttpClient,
        stats: Arc<Stats>,
    ) -> Result<Metadata, String> {
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
        Ok(Metadata {
            client: b.build(),
            stats,
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
        self.stats.metadata.add(path_label(path), ok);
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
    pub async fn identity(&self) -> Result<Identity, String> {
        match self.get(IDENTITY).await? {
            Some(body) => parse_identity(&body),
            None => Err("identity document not found (404)".into()),
        }
    }
}

/// Logs a path's failures: each new kind of failure at once, the same kind
/// again at most once a minute, and the recovery.
#[derive(Default)]
struct Complaints {
    failing_since: Option<Instant>,
    last_logged: Option<Instant>,
    last_kind: String,
    suppressed: u64,
}

/// A failure's kind: its description up to the first detail that varies.
fn kind_of(what: &str, detail: &str) -> String {
    let d: String = detail.chars().take(60).collect();
    format!("{what}: {d}")
}

impl Complaints {
    fn failed(&mut self, path: &str, what: &str, detail: &str) {
        let now = Instant::now();
        self.failing_since.get_or_insert(now);
        let kind = kind_of(what, detail);
        if kind != self.last_kind
            || self
                .last_logged
                .is_none_or(|t| now - t >= Duration::from_secs(60))
        {
            tracing::warn!(path, error = %detail, repeats = self.suppressed, "instance metadata {what}; still draining, will retry");
            self.last_logged = Some(now);
            self.last_kind = kind;
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
    }
    fn ok(&mut self, path: &str) {
        if let Some(since) = self.failing_since.take() {
            tracing::info!(path, after = ?since.elapsed(), "instance metadata answers again");
            self.last_logged = None;
            self.last_kind.clear();
            self.suppressed = 0;
        }
    }
}

fn seen<T>(
    path: &str,
    fetched: Result<Option<String>, String>,
    parse: impl Fn(&str) -> Result<T, String>,
    complaints: &mut Complaints,
) -> Seen<T> {
    match fetched {
        Ok(None) => {
            complaints.ok(path);
            Seen::Absent
        }
        Ok(Some(body)) => match parse(&body) {
            Ok(v) => {
                complaints.ok(path);
                Seen::Present(v)
            }
            Err(e) => {
                complaints.failed(path, "answered something unexpected", &e);
                Seen::Malformed(e)
            }
        },
        Err(e) => {
            complaints.failed(path, "did not answer", &e);
            Seen::Unknown
        }
    }
}

/// Polls the notice paths every `poll_interval` until `stop`, sending each
/// new event to the agent. `maintenance_lead`: with maintenance drains on,
/// how long before NotBefore to report an event as due.
pub async fn watch(
    md: Arc<Metadata>,
    poll_interval: Duration,
    maintenance_lead: Option<Duration>,
    tx: mpsc::Sender<Control>,
    stats: Arc<Stats>,
    stop: CancellationToken,
) {
    let mut tracker = Tracker::default();
    let mut complaints: [Complaints; 4] = Default::default();
    let mut due_sent: Vec<String> = Vec::new();
    let mut tick = tokio::time::interval(poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (spot, rebalance, lifecycle, maintenance) = tokio::join!(
            md.get(SPOT),
            md.get(REBALANCE),
            md.get(LIFECYCLE),
            md.get(MAINTENANCE)
        );
        let [c0, c1, c2, c3] = &mut complaints;
        let mut events = tracker.observe_spot(seen(SPOT, spot, notice::parse_spot, c0));
        events.extend(tracker.observe_rebalance(seen(
            REBALANCE,
            rebalance,
            notice::parse_rebalance,
            c1,
        )));
        events.extend(tracker.observe_lifecycle(seen(
            LIFECYCLE,
            lifecycle,
            notice::parse_lifecycle,
            c2,
        )));
        events.extend(tracker.observe_maintenance(seen(
            MAINTENANCE,
            maintenance,
            notice::parse_maintenance,
            c3,
        )));
        if let Some(lead) = maintenance_lead {
            let now = SystemTime::now();
            for m in tracker.maintenance() {
                let due = m.not_before.is_some_and(|nb| now + lead >= nb);
                if due && !due_sent.contains(&m.id) {
                    due_sent.push(m.id.clone());
                    events.push(Event::MaintenanceDue(m.clone()));
                }
            }
        }
        for e in events {
            stats.notices.add(e.kind(), true);
            if let Event::Lifecycle(_, to) = &e {
                *stats.lifecycle_state.lock().expect("stats lock") = Some(to.clone());
            }
            if tx.send(Control::Notice(e)).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn identity_document() {
        let id = parse_identity(
            r#"{"instanceId":"i-1","region":"eu-west-1","availabilityZone":"eu-west-1a","instanceType":"c5.large","pendingTime":"2026-11-22T16:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(id.instance_id, "i-1");
        assert_eq!(
            id.launch_time,
            Some(humantime::parse_rfc3339("2026-11-22T16:00:00Z").unwrap())
        );
        assert!(parse_identity("{}").is_err());
    }

    proptest! {
        #[test]
        fn identity_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_identity(&String::from_utf8_lossy(&bytes));
        }
    }
}
