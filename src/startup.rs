//! Start-up wiring: the SDK clients, who this instance is, its group, and
//! the metadata watcher. Everything here is best effort except the queue
//! (checked by the agent): a metadata service or Auto Scaling API that does
//! not answer is logged and the agent drains anyway.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::agent::{Control, Deps};
use crate::config::{Config, MaintenanceAction};
use crate::env::ProcessEnv;
use crate::fleet::Fleet;
use crate::membership::Membership;
use crate::metadata::{self, Identity, Metadata};
use crate::notify::Notifier;
use crate::queue::Queue;
use crate::stats::Stats;

/// How long start-up waits for the metadata service before going on
/// without an identity (off EC2, or IMDS disabled on the instance).
const IDENTITY_PATIENCE: Duration = Duration::from_secs(10);

/// Resolves `queue.url = "tag:KEY"` from the instance tag KEY in instance
/// metadata, so one image serves many groups (the launch template tags the
/// instance with its queue).
///
/// # Errors
/// A message for exit 78: metadata off, the tag absent, or metadata silent.
pub async fn resolve_instance_tags(config: &mut Config) -> Result<(), String> {
    let Some(key) = config
        .queue
        .url
        .strip_prefix(crate::config::TAG_PREFIX)
        .map(str::to_string)
    else {
        return Ok(());
    };
    let field = format!("queue.url = \"tag:{key}\"");
    if !config.metadata.enabled {
        return Err(format!("{field} needs instance metadata, but metadata.enabled = false; set the URL itself or enable metadata"));
    }
    let md = Metadata::new(
        &config.metadata,
        crate::aws::https_client(),
        Arc::new(Stats::default()),
    )?;
    let path = format!("/latest/meta-data/tags/instance/{key}");
    match tokio::time::timeout(IDENTITY_PATIENCE, md.get(&path)).await {
        Ok(Ok(Some(url))) if url.starts_with("https://") || url.starts_with("http://") => {
            tracing::info!(tag = %key, queue_url = %url.trim(), "queue URL from instance tag");
            config.queue.url = url.trim().to_string();
            Ok(())
        }
        Ok(Ok(Some(v))) => Err(format!("{field}: the tag's value {v:?} is not a queue URL; fix the tag on the instance or launch template")),
        Ok(Ok(None)) => Err(format!(
            "{field}: instance tag {key} not found; tag the instance (launch template tag specification) and enable instance metadata tags (InstanceMetadataTags=enabled)"
        )),
        Ok(Err(e)) => Err(format!("{field}: cannot read instance metadata: {e}")),
        Err(_) => Err(format!("{field}: instance metadata did not answer within 10s")),
    }
}

/// Binds the status page and starts it with its figures' refresher. A
/// port that cannot be bound is logged; the agent drains without a page.
async fn start_status_page(
    config: &Config,
    stats: &Arc<Stats>,
    queue: &Arc<Queue>,
    fleet: Option<Arc<Fleet>>,
    identity: Option<&Identity>,
    leave: Option<mpsc::Sender<()>>,
    stop: CancellationToken,
) {
    let cfg = &config.status;
    let listener = match crate::web::bind(cfg).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %cfg.listen, error = %e, "cannot serve the status page (is another drainerd on this port? set status.listen); draining without it");
            return;
        }
    };
    let board = Arc::new(crate::status::Board::default());
    tokio::spawn(crate::status::refresh(
        board.clone(),
        queue.clone(),
        fleet.clone(),
        cfg.refresh_interval.0,
        stop.clone(),
    ));
    let server = crate::web::Server {
        cfg: cfg.clone(),
        stats: stats.clone(),
        board,
        instance: crate::status::InstanceInfo {
            instance_id: identity.map(|i| i.instance_id.clone()),
            instance_type: identity.map(|i| i.instance_type.clone()),
            availability_zone: identity.map(|i| i.availability_zone.clone()),
            launch_time: identity.and_then(|i| i.launch_time),
            billing: Some(config.fleet.billing),
        },
        queue_url: queue.url.clone(),
        started: SystemTime::now(),
        fleet,
        leave,
        limiter: crate::web::Limiter::new(cfg.actions_per_minute),
    };
    tokio::spawn(crate::web::serve(listener, Arc::new(server), stop));
}

/// Builds the agent's dependencies and starts the metadata watcher, which
/// sends its events on `tx` until `stop`.
pub async fn deps(
    config: &Config,
    config_path: std::path::PathBuf,
    tx: mpsc::Sender<Control>,
    stop: CancellationToken,
) -> Deps {
    let http = crate::aws::https_client();
    let stats = Arc::new(Stats::default());

    let mut identity: Option<Identity> = None;
    if config.metadata.enabled {
        match Metadata::new(&config.metadata, http.clone(), stats.clone()) {
            Ok(md) => {
                let md = Arc::new(md);
                match tokio::time::timeout(IDENTITY_PATIENCE, md.identity()).await {
                    Ok(Ok(id)) => {
                        tracing::info!(instance_id = %id.instance_id, region = %id.region, instance_type = %id.instance_type,
                            launch_time = %id.launch_time.map(|t| humantime::format_rfc3339_seconds(t).to_string()).unwrap_or_default(), "instance identity from metadata");
                        identity = Some(id);
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "instance identity unavailable; notices are still watched")
                    }
                    Err(_) => tracing::warn!(
                        "instance metadata did not answer within 10s; notices are still watched"
                    ),
                }
                let lead = (config.metadata.maintenance == MaintenanceAction::Drain)
                    .then_some(config.metadata.maintenance_lead.0);
                tokio::spawn(metadata::watch(
                    md,
                    config.metadata.poll_interval.0,
                    lead,
                    tx.clone(),
                    stats.clone(),
                    stop.clone(),
                ));
            }
            Err(e) => {
                tracing::error!(error = %e, "instance metadata client could not be built; notices will not be seen")
            }
        }
    } else {
        tracing::warn!("instance metadata is DISABLED (metadata.enabled = false): spot interruptions, rebalance recommendations and lifecycle changes will NOT be seen; use this only outside EC2");
    }

    let region = config
        .region()
        .or_else(|| identity.as_ref().map(|i| i.region.clone()));
    let queue =
        Arc::new(Queue::connect(&config.queue, region.clone(), http.clone(), stats.clone()).await);

    let mut fleet = None;
    if let Some(id) = &identity {
        let sdk = crate::aws::sdk_config(
            http.clone(),
            region.clone(),
            config.fleet.endpoint_url.as_deref(),
        )
        .await;
        match Fleet::connect(&sdk, id.instance_id.clone(), stats.clone()).await {
            Ok(f) => {
                match &f.group {
                    Some(g) => {
                        tracing::info!(group = %g, instance_id = %f.instance_id, "member of Auto Scaling group")
                    }
                    None => {
                        tracing::info!(instance_id = %f.instance_id, "not in an Auto Scaling group")
                    }
                }
                fleet = Some(Arc::new(f));
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not look up this instance's Auto Scaling group; lifecycle hooks will not be answered")
            }
        }
    }

    let http_for_tracking = http;
    let tracker = if config.tracking.enabled {
        let t = tracker(config, &queue, http_for_tracking, region.clone(), &identity).await;
        // For /metrics. Set once: the agent starts once per process.
        let _ = stats.tracking.set(t.stats.clone());
        Some(t)
    } else {
        None
    };

    let (pause_tx, pause) = watch::channel(false);
    let (leave_tx, leave_requests) = mpsc::channel(1);
    let mut leave_tx = Some(leave_tx);
    match (&fleet, &identity) {
        (Some(f), Some(id)) if f.group.is_some() => {
            let m = Membership {
                fleet: f.clone(),
                queue: queue.clone(),
                stats: stats.clone(),
                cfg: config.fleet.clone(),
                launch_time: id.launch_time.unwrap_or_else(SystemTime::now),
                receive_bound: config.queue.wait_time.0 + Duration::from_secs(20),
                pause: pause_tx,
                control: tx,
                leave_requests,
            };
            tracing::info!(billing = ?config.fleet.billing, idle_timeout = %config.fleet.idle_timeout, dry_run = config.fleet.dry_run, "fleet logic on: protection while busy, leaving the group when work is scarce");
            tokio::spawn(m.run(stop.clone()));
        }
        _ => {
            leave_tx = None;
            tracing::info!("fleet logic off: not a known Auto Scaling group member; drainerd never terminates this instance");
        }
    }

    if config.status.enabled {
        start_status_page(
            config,
            &stats,
            &queue,
            fleet.clone(),
            identity.as_ref(),
            leave_tx,
            stop,
        )
        .await;
    }

    Deps {
        queue,
        stats,
        notifier: Notifier::from_env(),
        fleet,
        pause,
        reload: Box::new(move || Config::load(&config_path, &ProcessEnv)),
        tracker,
    }
}

/// The job-state tracker, and a task that reads the DLQ's maxReceiveCount
/// (retrying until the queue answers) so a failure on the last allowed
/// receive is recorded as DeadLettered; until then failures read Failed.
/// Makes no table request: a missing or unreachable table shows up as
/// logged write failures, never as a stopped agent.
async fn tracker(
    config: &Config,
    queue: &Arc<Queue>,
    http: aws_smithy_runtime_api::client::http::SharedHttpClient,
    region: Option<String>,
    identity: &Option<Identity>,
) -> Arc<crate::tracking::Tracker> {
    let table = crate::tracking::Table::connect(&config.tracking, region, http).await;
    tracing::info!(table = %table.name, "job-state tracking on");
    let t = Arc::new(crate::tracking::Tracker::start(
        table,
        config.tracking.queue_capacity,
        identity.as_ref().map(|i| i.instance_id.clone()),
    ));
    let (t2, q) = (t.clone(), queue.clone());
    tokio::spawn(async move {
        let mut wait = Duration::from_secs(2);
        loop {
            match q.max_receives().await {
                Ok(m) => {
                    tracing::info!(max_receive_count = ?m, "redrive policy read: failures on the last allowed receive are tracked as DeadLettered");
                    t2.set_max_receives(m);
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the queue's redrive policy yet; failed jobs are tracked as Failed until it is read");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(60));
                }
            }
        }
    });
    t
}
