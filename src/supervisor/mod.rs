//! The supervisor: starts everything (`wiring`), drives the drain through
//! its phases, and stops everything through the one shutdown tree.
//!
//! The drain's phases: **running** (intake open) → **draining** (intake
//! closed by SIGTERM, a notice or leaving the group; running jobs finish
//! within their deadline or are stopped and their messages handed back) →
//! **drained** (every job ended). Drained after SIGTERM, it exits; drained
//! after a notice or leaving, it stays up idle until the platform stops the
//! instance or drainerd is restarted. Shutdown cancels intake, never
//! running work, and the agent exits only after every message has been
//! settled. The wait for the queue's first answer (`first_answer.rs`),
//! reload (`reload.rs`) and the terminate lifecycle hook
//! (`lifecycle.rs`) are carried out from here too.

mod first_answer;
mod intake;
pub mod lifecycle;
pub mod reload;
pub mod wiring;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, Instant};

use crate::aws::autoscaling::AutoScaling;
use crate::aws::sqs::Sqs;
use crate::config::{Config, ConfigError};
use crate::control::{Control, Tasks};
use crate::decide::notice::{self, DrainEnd, Reaction};
use crate::drain::heartbeat::{Heartbeat, Leases};
use crate::drain::occupancy::Occupancy;
use crate::drain::output::LineBudget;
use crate::drain::queue::Queue;
use crate::drain::runner::JobContext;
use crate::drain::settle::Settler;
use crate::drain::slots::Slots;
use crate::fleet::Request as FleetRequest;
use crate::status::counters::Counters;
use crate::system::notify::Notifier;
use crate::system::privileges::RunAs;
use crate::tracking::Recorder;
use first_answer::{first_answer, FirstAnswer};
use intake::{DrainState, Opener, Phase};
use lifecycle::{log_notice, Hook};

/// How long the tasks may take to stop at exit (the settler flushing within
/// its own patience, then the lifecycle hook's completion; the tracking
/// writer meanwhile): a bound, so the exit never hangs on a call that does
/// not answer.
pub const EXIT_PATIENCE: Duration = Duration::from_secs(35);

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

/// What the drain needs, built by `wiring` (or by a test).
pub struct Agent {
    pub config: Config,
    pub sqs: Arc<Sqs>,
    pub counters: Arc<Counters>,
    pub occupancy: Arc<Occupancy>,
    pub notifier: Notifier,
    /// This instance's group membership, when known (for the lifecycle hook).
    pub asg: Option<Arc<AutoScaling>>,
    /// The fleet task's requests (leaving after a rebalance drain).
    pub fleet: Option<mpsc::Sender<FleetRequest>>,
    /// Reads the configuration again (for SIGHUP).
    pub reload: Box<dyn Fn() -> Result<Config, ConfigError> + Send>,
    /// Job-state tracking, when `[tracking]` is enabled.
    pub recorder: Option<Arc<Recorder>>,
    /// Who jobs run as (`job.user`), resolved and prepared for at start.
    pub run_as: Option<RunAs>,
    /// The shutdown tree every task runs under.
    pub tasks: Tasks,
}

/// Runs the agent until it has drained and exits.
///
/// # Errors
/// The queue is missing or unreachable at start, or an internal error.
pub async fn run(
    config: Config,
    config_path: std::path::PathBuf,
    run_as: Option<RunAs>,
) -> Result<(), AgentError> {
    let (inbox, control) = crate::control::Inbox::new();
    let tasks = Tasks::new();
    match crate::system::signals::Signals::install(inbox.clone()) {
        Ok(s) => {
            tasks.start_until_exit(s);
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            return Err(AgentError::Internal(format!("signal handlers: {e}")));
        }
    }
    let agent = wiring::start(config, config_path, inbox, tasks, run_as).await;
    drain(agent, control).await
}

/// Checks the queue, starts the drain's tasks and runs its phases until it
/// has drained and should exit.
///
/// # Errors
/// The queue is missing or unreachable at start, or the receiver failed.
pub async fn drain(agent: Agent, mut control: mpsc::Receiver<Control>) -> Result<(), AgentError> {
    let Agent {
        config,
        sqs,
        counters,
        occupancy,
        notifier,
        asg,
        fleet,
        reload,
        recorder,
        run_as,
        tasks,
    } = agent;
    let mut controls = match first_answer(&sqs, config.queue.start_timeout.0, &mut control).await {
        FirstAnswer::Answered(controls) => controls,
        FirstAnswer::Shutdown => {
            tracing::info!("shutdown requested before the queue answered; nothing was received");
            tasks.stop(EXIT_PATIENCE).await;
            return Ok(());
        }
        FirstAnswer::Failed(e) => {
            tasks.stop(EXIT_PATIENCE).await;
            return Err(e);
        }
    };
    counters.set_queue_ok(true);
    counters.tick();

    let queue: Arc<dyn Queue> = sqs.clone();
    let slots = Arc::new(Slots::new(config.job.concurrency));
    counters.set_slots(config.job.concurrency);
    let budget = Arc::new(LineBudget::new(config.job.log_lines_per_second));
    let (config_tx, config_rx) = watch::channel(Arc::new(config));
    let leases = Arc::new(Leases::default());
    let (settle_tx, settle_rx) = mpsc::unbounded_channel();
    // A deadline that is not the agent's (a spot interruption): running
    // jobs are SIGKILLed by it whatever their grace.
    let (kill_tx, kill_by) = watch::channel(None::<Instant>);

    tasks.start_until_exit(Settler {
        queue: queue.clone(),
        requests: settle_rx,
        counters: counters.clone(),
    });
    tasks.start_until_exit(Heartbeat {
        queue: queue.clone(),
        leases: leases.clone(),
        config: config_rx.clone(),
        counters: counters.clone(),
    });
    let ctx = Arc::new(JobContext {
        queue_url: sqs.url.clone(),
        config: config_rx.clone(),
        leases: leases.clone(),
        settle: settle_tx,
        budget: budget.clone(),
        counters: counters.clone(),
        occupancy: occupancy.clone(),
        recorder: recorder.clone(),
        kill_by,
        run_as,
    });
    let opener = Opener {
        tasks: tasks.clone(),
        queue,
        slots: slots.clone(),
        ctx,
        occupancy: occupancy.clone(),
        kill_by: kill_tx,
    };
    let mut intake = opener.open();

    let mut status = counters.summary(&occupancy.now());
    notifier.ready(&status);
    tracing::info!(queue_url = %sqs.url, slots = slots.size(), "drainerd ready: draining the queue");

    let mut st = DrainState::new();
    let mut hook = Hook::default();
    let mut control_open = true;
    // A leave asked of the fleet task after a drain, until it answers.
    let mut leaving: Option<oneshot::Receiver<Result<(), String>>> = None;
    let watchdog_every = notifier
        .watchdog_interval()
        .unwrap_or(Duration::from_secs(3600));
    let mut watchdog = tokio::time::interval(watchdog_every);
    let mut status_tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let mut resume = false;
        tokio::select! {
            c = controls.next(&mut control), if control_open => {
                control_open = c.is_some();
                match c.unwrap_or(Control::Shutdown) {
                    Control::Shutdown if !st.exit => {
                        st.exit = true;
                        let drain = config_rx.borrow().agent.drain_timeout.0;
                        st.close_intake(&intake, &occupancy, Some(drain));
                        status = counters.summary(&occupancy.now());
                        notifier.stopping(&status);
                        tracing::info!(running = leases.len(), drain_timeout = ?drain, "shutting down: stopped receiving; running jobs may finish within the drain timeout");
                        if st.phase == Phase::Drained {
                            break;
                        }
                    }
                    Control::Shutdown => {
                        if !intake.stop_jobs.is_cancelled() {
                            tracing::info!(running = leases.len(), "second shutdown request: stopping jobs now and handing their messages back");
                            intake.stop_jobs.cancel();
                        }
                    }
                    Control::Reload => reload::apply(&reload, &config_tx, &slots, &budget, &counters),
                    Control::Left(reason) => {
                        st.left = true;
                        st.close_intake(&intake, &occupancy, None);
                        counters.set_notice(Some(reason.clone()));
                        status = counters.summary(&occupancy.now());
                        // A status, not STOPPING=1: systemd takes STOPPING=1
                        // as "stopping by itself", waits TimeoutStopSec for
                        // the exit, then SIGKILLs, and a poweroff meanwhile
                        // sends no SIGTERM (seen in scripts/e2e-image).
                        notifier.status(&status);
                        tracing::warn!(reason = %reason, "left the Auto Scaling group: waiting for the platform to stop this instance");
                    }
                    Control::Notice(event) => {
                        let cfg = config_rx.borrow().clone();
                        let r = notice::reaction(&event, &cfg.notice_rules(), SystemTime::now());
                        log_notice(&event, &r, &counters);
                        if let Some(cause) = &st.cause {
                            if notice::drain_ends_on(cause, &event) == DrainEnd::Resume
                                && st.may_resume(hook.is_idle())
                            {
                                tracing::info!(notice = ?event, "the notice the drain was for is gone: taking work again");
                                resume = true;
                            }
                        }
                        if let Reaction::Drain { reason, cause, stop_jobs_in, kill_in, lifecycle } = r {
                            tracing::warn!(reason = %reason, running = leases.len(), stop_jobs_in = ?stop_jobs_in, "draining: stopped receiving");
                            counters.set_notice(Some(reason));
                            st.cause.get_or_insert(cause);
                            st.close_intake(&intake, &occupancy, stop_jobs_in);
                            if let Some(at) = kill_in.and_then(|k| Instant::now().checked_add(k)) {
                                opener.kill_by.send_modify(|k| *k = Some(k.map_or(at, |k| k.min(at))));
                            }
                            if lifecycle {
                                hook.begin(asg.clone(), &cfg, &tasks);
                            }
                            if st.phase == Phase::Drained {
                                hook.complete(&asg, &cfg, &occupancy, &tasks);
                            }
                        }
                    }
                }
            },
            () = async { sleep_until(st.stop_at.expect("checked")).await }, if st.stop_at.is_some() && !intake.stop_jobs.is_cancelled() => {
                tracing::info!(running = leases.len(), "drain deadline reached: stopping jobs and handing their messages back");
                intake.stop_jobs.cancel();
            }
            r = &mut intake.receiver, if !intake.receiver_done => {
                intake.receiver_done = true;
                intake.jobs.close();
                if let Err(e) = r {
                    tracing::error!(error = %e, "receiver task ended abnormally; draining and exiting");
                    st.failed = true;
                    st.exit = true;
                    let drain = config_rx.borrow().agent.drain_timeout.0;
                    st.close_intake(&intake, &occupancy, Some(drain));
                }
            }
            () = intake.jobs.wait(), if intake.receiver_done && st.phase != Phase::Drained => {
                st.phase = Phase::Drained;
                let cfg = config_rx.borrow().clone();
                hook.complete(&asg, &cfg, &occupancy, &tasks);
                if st.exit {
                    break;
                }
                let then = st.cause.as_ref().map_or(DrainEnd::Stay, notice::when_drained);
                let asked = match (then, &fleet) {
                    (DrainEnd::Leave, Some(fleet)) if st.may_resume(hook.is_idle()) => {
                        let (tx, rx) = oneshot::channel();
                        fleet.try_send(FleetRequest::LeaveDrained(tx)).is_ok().then_some(rx)
                    }
                    _ => None,
                };
                if let Some(rx) = asked {
                    tracing::info!("drained for a rebalance recommendation: leaving the group");
                    leaving = Some(rx);
                } else {
                    // Not in a group (or the fleet logic is off): nothing to
                    // leave; the drain ends when the notice is gone.
                    tracing::info!("drained: every message settled; receiving stays off until the notice is gone or drainerd is restarted");
                }
            }
            r = async { leaving.as_mut().expect("checked").await }, if leaving.is_some() => {
                leaving = None;
                let failed = match r {
                    Ok(Ok(())) => None,
                    Ok(Err(why)) => Some(why),
                    Err(_) => Some("the fleet task stopped".to_string()),
                };
                if let Some(why) = failed.filter(|_| st.may_resume(hook.is_idle())) {
                    tracing::warn!(reason = %why, "could not leave the group after the drain: taking work again");
                    resume = true;
                }
            }
            _ = watchdog.tick() => notifier.watchdog(),
            _ = status_tick.tick() => {
                counters.tick();
                let s = counters.summary(&occupancy.now());
                if s != status {
                    notifier.status(&s);
                    status = s;
                }
            }
        }
        if resume {
            intake = opener.reopen(intake);
            st.resumed();
            counters.set_notice(None);
            status = counters.summary(&occupancy.now());
            notifier.status(&status);
        }
    }
    // Every job has handed its message to the settler: stopping the tree
    // flushes the settler and the tracking writer and ends every task.
    tasks.stop(EXIT_PATIENCE).await;
    let summary = counters.summary(&occupancy.now());
    notifier.status(&summary);
    let (asg_calls, md) = (counters.asg.total(), counters.metadata.total());
    tracing::info!(summary = %summary, sqs_requests = %counters.requests_summary(), sqs_requests_per_job = %counters.requests_per_job_text(), autoscaling_requests = asg_calls, metadata_requests = md, "drainerd stopped; every message was settled");
    if st.failed {
        return Err(AgentError::Internal(
            "the receive loop ended abnormally".into(),
        ));
    }
    Ok(())
}
