//! The supervisor: checks the queue, then wires the receiver, the jobs, the
//! lease heartbeats and the settler, and drives shutdown and reload.
//!
//! Shutdown cancels intake, never running work: jobs finish within the drain
//! timeout or are stopped and their messages handed back (visibility 0), and
//! the agent exits only after every message has been settled.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ConfigError};
use crate::heartbeat::{self, Leases};
use crate::notify::Notifier;
use crate::output::LineBudget;
use crate::policy::error_backoff;
use crate::queue::Queue;
use crate::runner::{self, JobContext};
use crate::settle::{self, Action, Request};
use crate::slots::Slots;
use crate::stats::Stats;

/// How long a receive waits for more slots to free up once one has: short
/// against any job, long enough that jobs ending together share a request.
const GATHER: Duration = Duration::from_millis(25);

/// What the outside world asks of a running agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// First: drain. Second: stop jobs now.
    Shutdown,
    /// Re-read the configuration.
    Reload,
}

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("queue {url} does not exist (or these credentials may not see it): {detail}; check queue.url and the instance's IAM role")]
    QueueMissing { url: String, detail: String },
    #[error("queue {url} unreachable for {waited:?}: {detail}; check the network, credentials and queue.endpoint_url")]
    QueueUnreachable {
        url: String,
        waited: Duration,
        detail: String,
    },
}

/// What the agent needs from outside: injected so tests can supply them.
pub struct Deps {
    pub queue: Arc<Queue>,
    pub stats: Arc<Stats>,
    pub notifier: Notifier,
    /// Reads the configuration again (for SIGHUP).
    pub reload: Box<dyn Fn() -> Result<Config, ConfigError> + Send>,
}

/// Runs until shut down through `control`.
///
/// # Errors
/// The queue is missing or unreachable at start.
pub async fn run(
    config: Config,
    deps: Deps,
    mut control: mpsc::Receiver<Control>,
) -> Result<(), AgentError> {
    let Deps {
        queue,
        stats,
        notifier,
        reload,
    } = deps;
    wait_for_queue(&queue, config.queue.start_timeout.0).await?;

    let slots = Arc::new(Slots::new(config.job.concurrency));
    stats.slots.store(
        config.job.concurrency as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    stats.mark_idle_now();
    let budget = Arc::new(LineBudget::new(config.job.log_lines_per_second));
    let (config_tx, config_rx) = watch::channel(Arc::new(config));
    let leases = Arc::new(Leases::default());
    let (settle_tx, settle_rx) = mpsc::unbounded_channel();
    let intake = CancellationToken::new();
    let stop_jobs = CancellationToken::new();
    let stop_heartbeat = CancellationToken::new();
    let jobs = TaskTracker::new();

    let settler = tokio::spawn(settle::run(queue.clone(), settle_rx, stats.clone()));
    let heartbeats = tokio::spawn(heartbeat::run(
        queue.clone(),
        leases.clone(),
        config_rx.clone(),
        stats.clone(),
        stop_heartbeat.clone(),
    ));
    let ctx = Arc::new(JobContext {
        queue_url: queue.url.clone(),
        config: config_rx.clone(),
        leases: leases.clone(),
        settle: settle_tx.clone(),
        budget,
        stats: stats.clone(),
    });
    let mut receiver = tokio::spawn(receive_loop(
        queue.clone(),
        slots.clone(),
        ctx,
        jobs.clone(),
        intake.clone(),
        stop_jobs.clone(),
    ));

    let mut status = stats.summary(false);
    notifier.ready(&status);
    tracing::info!(queue_url = %queue.url, slots = slots.size(), "drainerd ready: draining the queue");

    let mut draining = false;
    let mut control_open = true;
    let mut receiver_done = false;
    let mut drain_deadline: Option<Instant> = None;
    let watchdog_every = notifier
        .watchdog_interval()
        .unwrap_or(Duration::from_secs(3600));
    let mut watchdog = tokio::time::interval(watchdog_every);
    let mut status_tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            c = control.recv(), if control_open => match c {
                Some(Control::Shutdown) | None if !draining => {
                    control_open = c.is_some();
                    draining = true;
                    intake.cancel();
                    let drain = config_rx.borrow().agent.drain_timeout.0;
                    drain_deadline = Some(Instant::now() + drain);
                    status = stats.summary(true);
                    notifier.stopping(&status);
                    tracing::info!(running = leases.len(), drain_timeout = ?drain, "shutting down: stopped receiving; running jobs may finish within the drain timeout");
                }
                Some(Control::Shutdown) | None => {
                    control_open = c.is_some();
                    if !stop_jobs.is_cancelled() {
                        tracing::info!(running = leases.len(), "second shutdown request: stopping jobs now and handing their messages back");
                        stop_jobs.cancel();
                    }
                }
                Some(Control::Reload) => apply_reload(&reload, &config_tx, &slots, &stats),
            },
            () = async { sleep_until(drain_deadline.expect("set when draining")).await }, if drain_deadline.is_some() && !stop_jobs.is_cancelled() => {
                tracing::info!(running = leases.len(), "drain timeout reached: stopping jobs and handing their messages back");
                stop_jobs.cancel();
            }
            r = &mut receiver, if !receiver_done => {
                receiver_done = true;
                jobs.close();
                if let Err(e) = r {
                    tracing::error!(error = %e, "receiver task ended abnormally");
                    intake.cancel();
                    draining = true;
                }
            }
            () = jobs.wait(), if receiver_done => break,
            _ = watchdog.tick() => notifier.watchdog(),
            _ = status_tick.tick() => {
                let s = stats.summary(draining);
                if s != status {
                    notifier.status(&s);
                    status = s;
                }
            }
        }
    }
    // Every job has handed its message to the settler; flush it.
    drop(settle_tx);
    stop_heartbeat.cancel();
    let _ = heartbeats.await;
    let _ = settler.await;
    let summary = stats.summary(true);
    notifier.status(&summary);
    tracing::info!(summary = %summary, sqs_requests = %stats.requests_summary(), "drainerd stopped; every message was settled");
    Ok(())
}

async fn wait_for_queue(queue: &Queue, patience: Duration) -> Result<(), AgentError> {
    let start = Instant::now();
    let mut failures = 0;
    loop {
        match queue.check().await {
            Ok(()) => return Ok(()),
            Err(e) if e.missing => {
                return Err(AgentError::QueueMissing {
                    url: e.url,
                    detail: e.detail,
                })
            }
            Err(e) => {
                failures += 1;
                if start.elapsed() >= patience {
                    return Err(AgentError::QueueUnreachable {
                        url: e.url,
                        waited: start.elapsed(),
                        detail: e.detail,
                    });
                }
                tracing::warn!(error = %e, "queue not reachable yet; retrying");
                let d = error_backoff(
                    failures,
                    Duration::from_millis(500),
                    Duration::from_secs(5),
                    fastrand::f64(),
                );
                sleep(d.min(patience.saturating_sub(start.elapsed()))).await;
            }
        }
    }
}

fn apply_reload(
    reload: &(dyn Fn() -> Result<Config, ConfigError> + Send),
    config_tx: &watch::Sender<Arc<Config>>,
    slots: &Slots,
    stats: &Stats,
) {
    let new = match reload() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "reload refused: the new configuration is invalid; keeping the running one");
            return;
        }
    };
    let old = config_tx.borrow().clone();
    let mut effective = new;
    for (field, was, wanted) in old.restart_only_changes(&effective) {
        tracing::warn!(field, running = %was, requested = %wanted, "reload: {field} changes only on restart; keeping the running value");
    }
    effective.queue.url = old.queue.url.clone();
    effective.queue.region = old.queue.region.clone();
    effective.queue.endpoint_url = old.queue.endpoint_url.clone();
    effective.agent.log_level = old.agent.log_level.clone();
    effective.job.log_lines_per_second = old.job.log_lines_per_second;
    slots.resize(effective.job.concurrency);
    stats.slots.store(
        effective.job.concurrency as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    tracing::info!(slots = effective.job.concurrency, job_timeout = %effective.job.timeout, "configuration reloaded");
    config_tx.send_replace(Arc::new(effective));
}

/// Receives while there are free slots and intake is open. An in-flight
/// receive is allowed to finish (at most one long poll); messages that
/// arrive after intake closed are handed straight back.
async fn receive_loop(
    queue: Arc<Queue>,
    slots: Arc<Slots>,
    ctx: Arc<JobContext>,
    jobs: TaskTracker,
    intake: CancellationToken,
    stop_jobs: CancellationToken,
) {
    let mut failures: u32 = 0;
    let mut last_kind: Option<String> = None;
    let mut last_logged = Instant::now();
    let mut seq: u64 = 0;
    loop {
        // biased: once intake is closed, never start another receive.
        let permits = tokio::select! {
            biased;
            () = intake.cancelled() => return,
            p = slots.acquire_batch(slots.size().min(10), GATHER) => p,
        };
        let (wait, lease) = {
            let c = ctx.config.borrow();
            (c.queue.wait_time.0, c.queue.lease.0)
        };
        // A receive that never answers would silently stop the agent.
        let r = match tokio::time::timeout(
            wait + Duration::from_secs(15),
            queue.receive(permits.len(), wait, lease),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(crate::queue::QueueError {
                api: "ReceiveMessage",
                url: queue.url.clone(),
                kind: "no answer".into(),
                detail: format!("no answer within {:?}", wait + Duration::from_secs(15)),
                missing: false,
            }),
        };
        match r {
            Ok(messages) => {
                if failures > 0 {
                    tracing::info!(failures, "SQS reachable again; receiving");
                    failures = 0;
                    last_kind = None;
                }
                let mut permits = permits.into_iter();
                for m in messages {
                    if intake.is_cancelled() {
                        let _ = ctx.settle.send(Request {
                            message_id: Arc::from(m.id.as_str()),
                            receipt: m.receipt,
                            action: Action::Release(Duration::ZERO),
                        });
                        continue;
                    }
                    let Some(permit) = permits.next() else {
                        // SQS returned more than asked: hand the extra back.
                        let _ = ctx.settle.send(Request {
                            message_id: Arc::from(m.id.as_str()),
                            receipt: m.receipt,
                            action: Action::Release(Duration::ZERO),
                        });
                        continue;
                    };
                    seq += 1;
                    jobs.spawn(runner::run(
                        ctx.clone(),
                        seq,
                        m,
                        permit,
                        stop_jobs.child_token(),
                    ));
                }
            }
            Err(e) => {
                drop(permits);
                failures += 1;
                let delay = error_backoff(
                    failures,
                    Duration::from_secs(1),
                    Duration::from_secs(30),
                    fastrand::f64(),
                );
                let new_kind = last_kind.as_deref() != Some(e.kind.as_str());
                if new_kind || last_logged.elapsed() >= Duration::from_secs(30) {
                    tracing::warn!(error = %e, kind = %e.kind, failures, retry_in = ?delay, "cannot receive from SQS; backing off");
                    last_kind = Some(e.kind.clone());
                    last_logged = Instant::now();
                }
                tokio::select! {
                    biased;
                    () = intake.cancelled() => return,
                    () = sleep(delay) => {}
                }
            }
        }
    }
}
