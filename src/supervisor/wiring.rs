//! Wiring at start: build the SDK clients, learn who this instance is and
//! its group, then start the metadata watcher, the fleet task, job-state
//! tracking and the status page under the shutdown tree. Everything here is
//! best effort except the queue (checked by the supervisor): a metadata
//! service or Auto Scaling API that does not answer is logged and the
//! agent drains anyway.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Agent;
use crate::aws::autoscaling::AutoScaling;
use crate::aws::figures::AwsFigures;
use crate::aws::imds::Imds;
use crate::aws::sqs::Sqs;
use crate::config::overrides::ProcessEnv;
use crate::config::{Config, MaintenanceAction};
use crate::control::{Inbox, Task, Tasks};
use crate::drain::occupancy::Occupancy;
use crate::fleet::{Membership, Request as FleetRequest};
use crate::metadata::identity::Identity;
use crate::metadata::watcher::Watcher;
use crate::status::board::{Board, Refresher};
use crate::status::counters::Counters;
use crate::status::server::{self, Limiter, Page, Server};
use crate::status::InstanceInfo;
use crate::system::notify::Notifier;
use crate::tracking::{Recorder, Table};

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
    let md = Imds::new(
        &config.metadata,
        crate::aws::https_client(),
        Arc::new(Counters::default()),
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

/// Builds what the drain needs and starts the background tasks under
/// `tasks`: the metadata watcher (sending notices to `inbox`), the fleet
/// task, job-state tracking and the status page.
pub async fn start(
    config: Config,
    config_path: std::path::PathBuf,
    inbox: Inbox,
    tasks: Tasks,
    run_as: Option<crate::system::privileges::RunAs>,
) -> Agent {
    let http = crate::aws::https_client();
    let counters = Arc::new(Counters::default());
    let occupancy = Occupancy::new();

    let mut identity: Option<Identity> = None;
    if config.metadata.enabled {
        match Imds::new(&config.metadata, http.clone(), counters.clone()) {
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
                tasks.start_until_exit(Watcher {
                    imds: md,
                    poll_interval: config.metadata.poll_interval.0,
                    maintenance_lead: (config.metadata.maintenance == MaintenanceAction::Drain)
                        .then_some(config.metadata.maintenance_lead.0),
                    inbox: inbox.clone(),
                    counters: counters.clone(),
                });
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
    let sqs = Arc::new(
        Sqs::connect(
            &config.queue,
            region.clone(),
            http.clone(),
            counters.clone(),
        )
        .await,
    );

    // The group is looked up by the fleet task, retrying until Auto
    // Scaling answers.
    let mut asg = None;
    if let Some(id) = &identity {
        let sdk = crate::aws::sdk_config(
            http.clone(),
            region.clone(),
            config.fleet.endpoint_url.as_deref(),
        )
        .await;
        asg = Some(Arc::new(AutoScaling::new(
            &sdk,
            id.instance_id.clone(),
            counters.clone(),
        )));
    }

    let recorder = if config.tracking.enabled {
        let r = recorder(&config, &sqs, http, region.clone(), &identity, &tasks).await;
        counters.set_tracking(r.stats.clone());
        Some(r)
    } else {
        None
    };

    let mut fleet_requests: Option<mpsc::Sender<FleetRequest>> = None;
    match (&asg, &identity) {
        (Some(a), Some(id)) => {
            let (tx, requests) = mpsc::channel(4);
            fleet_requests = Some(tx);
            tasks.start_until_exit(Membership {
                asg: a.clone(),
                queue: sqs.clone(),
                counters: counters.clone(),
                occupancy: occupancy.clone(),
                cfg: config.fleet.clone(),
                launch_time: id.launch_time.unwrap_or_else(SystemTime::now),
                receive_bound: config.queue.wait_time.0 + Duration::from_secs(20),
                inbox,
                requests,
            });
        }
        _ => {
            tracing::info!("fleet logic off: this instance's identity is unknown; drainerd never terminates this instance");
        }
    }

    if config.status.enabled {
        start_status_page(
            &config,
            &counters,
            &occupancy,
            &sqs,
            asg.clone(),
            identity.as_ref(),
            fleet_requests.clone(),
            &tasks,
        )
        .await;
    }

    Agent {
        config,
        sqs,
        counters,
        occupancy,
        notifier: Notifier::from_env(),
        asg,
        fleet: fleet_requests,
        reload: Box::new(move || Config::load(&config_path, &ProcessEnv)),
        recorder,
        run_as,
        tasks,
    }
}

/// Binds the status page and starts it with its figures' refresher. A
/// port that cannot be bound is logged; the agent drains without a page.
#[allow(clippy::too_many_arguments)] // the page shows everything the agent has
async fn start_status_page(
    config: &Config,
    counters: &Arc<Counters>,
    occupancy: &Arc<Occupancy>,
    sqs: &Arc<Sqs>,
    asg: Option<Arc<AutoScaling>>,
    identity: Option<&Identity>,
    fleet: Option<mpsc::Sender<FleetRequest>>,
    tasks: &Tasks,
) {
    let cfg = &config.status;
    let listener = match server::bind(cfg).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %cfg.listen, error = %e, "cannot serve the status page (is another drainerd on this port? set status.listen); draining without it");
            return;
        }
    };
    let board = Arc::new(Board::default());
    tasks.start_until_exit(Refresher {
        board: board.clone(),
        source: Arc::new(AwsFigures {
            sqs: sqs.clone(),
            asg,
        }),
        interval: cfg.refresh_interval.0,
        counters: counters.clone(),
    });
    let server = Server {
        cfg: cfg.clone(),
        counters: counters.clone(),
        occupancy: occupancy.clone(),
        board,
        instance: InstanceInfo {
            instance_id: identity.map(|i| i.instance_id.clone()),
            instance_type: identity.map(|i| i.instance_type.clone()),
            availability_zone: identity.map(|i| i.availability_zone.clone()),
            launch_time: identity.and_then(|i| i.launch_time),
            billing: Some(config.fleet.billing),
        },
        queue_url: sqs.url.clone(),
        started: SystemTime::now(),
        fleet,
        limiter: Limiter::new(cfg.actions_per_minute),
        refusals: server::Refusals::default(),
    };
    tasks.start_until_exit(Page {
        listener,
        server: Arc::new(server),
    });
}

/// The job-state recorder with its writer task, and a task that reads the
/// DLQ's maxReceiveCount (retrying until the queue answers) so a failure on
/// the last allowed receive is recorded as DeadLettered; until then
/// failures read Failed. Makes no table request: a missing or unreachable
/// table shows up as logged write failures, never as a stopped agent.
async fn recorder(
    config: &Config,
    sqs: &Arc<Sqs>,
    http: crate::aws::HttpClient,
    region: Option<String>,
    identity: &Option<Identity>,
    tasks: &Tasks,
) -> Arc<Recorder> {
    let table = Table::connect(&config.tracking, region, http).await;
    tracing::info!(table = %table.name, "job-state tracking on");
    let (recorder, writer) = Recorder::new(
        table,
        config.tracking.queue_capacity,
        identity.as_ref().map(|i| i.instance_id.clone()),
    );
    tasks.start_until_exit(writer);
    let recorder = Arc::new(recorder);
    tasks.start_until_exit(RedriveReader {
        recorder: recorder.clone(),
        sqs: sqs.clone(),
    });
    recorder
}

/// Reads the queue's redrive policy once, retrying until SQS answers.
struct RedriveReader {
    recorder: Arc<Recorder>,
    sqs: Arc<Sqs>,
}

impl Task for RedriveReader {
    const NAME: &'static str = "redrive policy reader";

    async fn run(self, stop: CancellationToken) {
        let mut wait = Duration::from_secs(2);
        loop {
            match self.sqs.max_receives().await {
                Ok(m) => {
                    tracing::info!(max_receive_count = ?m, "redrive policy read: failures on the last allowed receive are tracked as DeadLettered");
                    self.recorder.set_max_receives(m);
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the queue's redrive policy yet; failed jobs are tracked as Failed until it is read");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(Duration::from_secs(60));
                }
            }
        }
    }
}
