//! The supervisor: checks the queue, then wires the receiver, the jobs, the
//! lease heartbeats and the settler, and drives shutdown and reload.
//!
//! Shutdown cancels intake, never running work: jobs finish within the drain
//! timeout or are stopped and their messages handed back (visibility 0), and
//! the agent exits only after every message has been settled. Logging
//! notices and answering the terminate lifecycle hook live in
//! `agent/lifecycle.rs`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ConfigError};
use crate::fleet::Fleet;
use crate::heartbeat::{self, Leases};
use crate::notice::Event;
use crate::notify::Notifier;
use crate::output::LineBudget;
use crate::policy::{self, error_backoff, Reaction};
use crate::queue::Queue;
use crate::receiver;
use crate::runner::JobContext;
use crate::settle;
use crate::slots::Slots;
use crate::stats::Stats;

mod lifecycle;
use lifecycle::{finish_drain, log_notice, start_lifecycle_heartbeats};

/// What the outside world asks of a running agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// First: drain. Second: stop jobs now.
    Shutdown,
    /// Re-read the configuration.
    Reload,
    /// Something instance metadata said.
    Notice(Event),
    /// The fleet logic removed this instance from its group: stop for good.
    Left(String),
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
    #[error("internal error: {0}")]
    Internal(String),
}

/// What the agent needs from outside: injected so tests can supply them.
pub struct Deps {
    pub queue: Arc<Queue>,
    pub stats: Arc<Stats>,
    pub notifier: Notifier,
    /// This instance's Auto Scaling membership, when known.
    pub fleet: Option<Arc<Fleet>>,
    /// While true, no receive starts (the fleet logic is checking that
    /// nothing is in flight before it leaves the group).
    pub pause: watch::Receiver<bool>,
    /// Reads the configuration again (for SIGHUP).
    pub reload: Box<dyn Fn() -> Result<Config, ConfigError> + Send>,
    /// Job-state tracking, when `[tracking]` is enabled.
    pub tracker: Option<Arc<crate::tracking::Tracker>>,
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
        fleet,
        pause,
        reload,
        tracker,
    } = deps;
    wait_for_queue(&queue, config.queue.start_timeout.0).await?;
    stats
        .queue_ok
        .store(true, std::sync::atomic::Ordering::Relaxed);
    stats.tick();

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
        tracker: tracker.clone(),
    });
    let mut receiver = tokio::spawn(receiver::run(
        queue.clone(),
        slots.clone(),
        ctx,
        jobs.clone(),
        intake.clone(),
        pause,
        stop_jobs.clone(),
    ));

    let mut status = stats.summary(false);
    notifier.ready(&status);
    tracing::info!(queue_url = %queue.url, slots = slots.size(), "drainerd ready: draining the queue");

    let mut st = DrainState::default();
    let mut control_open = true;
    let mut receiver_done = false;
    let mut drained = false;
    let mut lifecycle_beats: Option<CancellationToken> = None;
    let watchdog_every = notifier
        .watchdog_interval()
        .unwrap_or(Duration::from_secs(3600));
    let mut watchdog = tokio::time::interval(watchdog_every);
    let mut status_tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            c = control.recv(), if control_open => {
                control_open = c.is_some();
                match c.unwrap_or(Control::Shutdown) {
                    Control::Shutdown if !st.exit => {
                        st.exit = true;
                        let drain = config_rx.borrow().agent.drain_timeout.0;
                        st.begin(&intake, Some(drain), &stats);
                        status = stats.summary(true);
                        notifier.stopping(&status);
                        tracing::info!(running = leases.len(), drain_timeout = ?drain, "shutting down: stopped receiving; running jobs may finish within the drain timeout");
                        if drained {
                            break;
                        }
                    }
                    Control::Shutdown => {
                        if !stop_jobs.is_cancelled() {
                            tracing::info!(running = leases.len(), "second shutdown request: stopping jobs now and handing their messages back");
                            stop_jobs.cancel();
                        }
                    }
                    Control::Reload => apply_reload(&reload, &config_tx, &slots, &stats),
                    Control::Left(reason) => {
                        st.begin(&intake, None, &stats);
                        stats.set_notice(reason.clone());
                        status = stats.summary(true);
                        // A status, not STOPPING=1: systemd takes STOPPING=1
                        // as "stopping by itself", waits TimeoutStopSec for
                        // the exit, then SIGKILLs, and a poweroff meanwhile
                        // sends no SIGTERM (seen in scripts/e2e-image).
                        notifier.status(&status);
                        tracing::warn!(reason = %reason, "left the Auto Scaling group: waiting for the platform to stop this instance");
                    }
                    Control::Notice(event) => {
                        let cfg = config_rx.borrow().clone();
                        let r = policy::reaction(&event, &cfg.metadata, cfg.job.kill_grace.0, cfg.agent.drain_timeout.0, SystemTime::now());
                        log_notice(&event, &r, &stats);
                        if let Reaction::Drain { reason, stop_jobs_in, lifecycle } = r {
                            tracing::warn!(reason = %reason, running = leases.len(), stop_jobs_in = ?stop_jobs_in, "draining: stopped receiving");
                            stats.set_notice(reason);
                            st.begin(&intake, stop_jobs_in, &stats);
                            if lifecycle && !st.lifecycle {
                                st.lifecycle = true;
                                lifecycle_beats = start_lifecycle_heartbeats(fleet.clone(), &cfg);
                            }
                            if drained {
                                finish_drain(&mut st, &fleet, &cfg, &mut lifecycle_beats).await;
                            }
                        }
                    }
                }
            },
            () = async { sleep_until(st.stop_at.expect("checked")).await }, if st.stop_at.is_some() && !stop_jobs.is_cancelled() => {
                tracing::info!(running = leases.len(), "drain deadline reached: stopping jobs and handing their messages back");
                stop_jobs.cancel();
            }
            r = &mut receiver, if !receiver_done => {
                receiver_done = true;
                jobs.close();
                if let Err(e) = r {
                    tracing::error!(error = %e, "receiver task ended abnormally; draining and exiting");
                    st.failed = true;
                    st.exit = true;
                    st.begin(&intake, Some(config_rx.borrow().agent.drain_timeout.0), &stats);
                }
            }
            () = jobs.wait(), if receiver_done && !drained => {
                drained = true;
                let cfg = config_rx.borrow().clone();
                finish_drain(&mut st, &fleet, &cfg, &mut lifecycle_beats).await;
                if st.exit {
                    break;
                }
                tracing::info!("drained: every message settled; receiving stays off until drainerd is restarted");
            }
            _ = watchdog.tick() => notifier.watchdog(),
            _ = status_tick.tick() => {
                stats.tick();
                let s = stats.summary(st.draining);
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
    if let Some(t) = &tracker {
        // Bounded: the exit never waits long on the tracking table.
        t.close(Duration::from_secs(5)).await;
    }
    let summary = stats.summary(true);
    notifier.status(&summary);
    let (asg, md) = (stats.asg.total(), stats.metadata.total());
    tracing::info!(summary = %summary, sqs_requests = %stats.requests_summary(), sqs_requests_per_job = %stats.requests_per_job_text(), autoscaling_requests = asg, metadata_requests = md, "drainerd stopped; every message was settled");
    if st.failed {
        return Err(AgentError::Internal(
            "the receive loop ended abnormally".into(),
        ));
    }
    Ok(())
}

/// Where the agent is in draining.
#[derive(Debug, Default)]
struct DrainState {
    /// Intake closed.
    draining: bool,
    /// Exit once drained (SIGTERM), rather than stay up idle.
    exit: bool,
    /// When running jobs are stopped (earliest asked for).
    stop_at: Option<Instant>,
    /// A terminate lifecycle hook is waiting for us.
    lifecycle: bool,
    lifecycle_done: bool,
    failed: bool,
}

impl DrainState {
    fn begin(&mut self, intake: &CancellationToken, stop_in: Option<Duration>, stats: &Stats) {
        self.draining = true;
        stats
            .draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
        intake.cancel();
        if let Some(d) = stop_in {
            let at = Instant::now() + d;
            self.stop_at = Some(self.stop_at.map_or(at, |s| s.min(at)));
        }
    }
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
    effective.metadata = old.metadata.clone();
    effective.fleet = old.fleet.clone();
    effective.status = old.status.clone();
    effective.tracking = old.tracking.clone();
    effective.job.log_lines_per_second = old.job.log_lines_per_second;
    slots.resize(effective.job.concurrency);
    stats.slots.store(
        effective.job.concurrency as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    tracing::info!(slots = effective.job.concurrency, job_timeout = %effective.job.timeout, "configuration reloaded");
    config_tx.send_replace(Arc::new(effective));
}
