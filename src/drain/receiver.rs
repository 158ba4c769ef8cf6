//! The receive loop: long-polls SQS for as many messages as there are free
//! job slots and starts a job task per message.
//!
//! It owns intake and nothing else: it never touches a running job. Once
//! intake is cancelled it starts no new receive; a receive already in flight
//! finishes (at most one long poll) and whatever it returns is handed
//! straight back. While the fleet task pauses intake it waits. SQS errors
//! back off with jitter and are logged once per kind per 30 s.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::occupancy::Hold;
use super::queue::{Queue, QueueError, Received};
use super::runner::{self, JobContext};
use super::settle::Request;
use super::slots::Slots;
use crate::control::Task;
use crate::decide::backoff::error_backoff;

/// How long a receive waits for more slots to free up once one has: short
/// against any job, long enough that jobs ending together share a request.
const GATHER: Duration = Duration::from_millis(25);
/// While jobs cannot start, the command is probed this long after intake
/// closed, then ever less often, up to [`PROBE_MAX`].
const PROBE_FIRST: Duration = Duration::from_secs(5);
const PROBE_MAX: Duration = Duration::from_secs(60);
/// A receive that has not answered this long after its long poll ended is
/// abandoned (and counted as a failure): a receive that never answers would
/// silently stop the agent.
const RECEIVE_SLACK: Duration = Duration::from_secs(15);

/// The intake task. Its stop token is intake: cancelling it closes intake.
pub struct Receiver {
    pub queue: Arc<dyn Queue>,
    pub slots: Arc<Slots>,
    pub ctx: Arc<JobContext>,
    /// The job tasks it starts (the supervisor waits for them to end).
    pub jobs: TaskTracker,
    /// Cancelled to stop running jobs (each job gets a child token).
    pub stop_jobs: CancellationToken,
}

impl Task for Receiver {
    const NAME: &'static str = "receiver";

    /// Receives while there are free slots and intake is open. An in-flight
    /// receive is allowed to finish (at most one long poll); messages that
    /// arrive after intake closed are handed straight back.
    async fn run(self, intake: CancellationToken) {
        let Receiver {
            queue,
            slots,
            ctx,
            jobs,
            stop_jobs,
        } = self;
        let occupancy = &ctx.occupancy;
        let mut failures: u32 = 0;
        let mut last_kind: Option<String> = None;
        let mut last_logged = Instant::now();
        let mut seq: u64 = 0;
        let mut probe_in = PROBE_FIRST;
        loop {
            // Jobs cannot start (the agent's fault): take no work; probe
            // the command now and then, and take work again once it can.
            if occupancy.now().cannot_start {
                tokio::select! {
                    biased;
                    () = intake.cancelled() => return,
                    () = sleep(probe_in) => {}
                }
                let (argv0, dir) = {
                    let c = ctx.config.borrow();
                    (c.job.command[0].clone(), c.job.working_dir.clone())
                };
                match super::process::can_start(&argv0, dir.as_deref()) {
                    Ok(()) => {
                        tracing::info!(command = %argv0, "the job command can start again: taking work");
                        occupancy.can_start_again();
                        ctx.counters.set_start_problem(None);
                        probe_in = PROBE_FIRST;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, retry_in = ?probe_in, "jobs still cannot start");
                        probe_in = (probe_in * 2).min(PROBE_MAX);
                    }
                }
                continue;
            }
            // Paused (the fleet task is about to leave the group): wait.
            tokio::select! {
                biased;
                () = intake.cancelled() => return,
                () = occupancy.wait_until(|l| !l.paused) => {}
            }
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
            let now = occupancy.now();
            if now.paused || now.cannot_start {
                continue;
            }
            let receiving = occupancy.receiving();
            let bound = wait + RECEIVE_SLACK;
            let r = match tokio::time::timeout(bound, queue.receive(permits.len(), wait, lease))
                .await
            {
                Ok(r) => r,
                Err(_) => Err(QueueError {
                    api: "ReceiveMessage",
                    url: queue.url().to_string(),
                    kind: "no answer".into(),
                    detail: format!("no answer within {bound:?}"),
                    missing: false,
                    denied: false,
                }),
            };
            match r {
                Ok(messages) => {
                    // Held before the receive counts as over: the fleet task
                    // never sees empty hands while messages are in them.
                    let messages: Vec<(Received, Hold)> = messages
                        .into_iter()
                        .map(|m| (m, occupancy.hold()))
                        .collect();
                    drop(receiving);
                    ctx.counters.set_queue_ok(true);
                    ctx.counters.received(messages.len());
                    if failures > 0 {
                        tracing::info!(failures, "SQS reachable again; receiving");
                        failures = 0;
                        last_kind = None;
                    }
                    let mut permits = permits.into_iter();
                    for (m, hold) in messages {
                        let permit = if intake.is_cancelled() {
                            None
                        } else {
                            // None: SQS returned more than asked.
                            permits.next()
                        };
                        let Some(permit) = permit else {
                            let _ = ctx.settle.send(Request::hand_back(&m, hold));
                            continue;
                        };
                        seq += 1;
                        jobs.spawn(runner::run(
                            ctx.clone(),
                            seq,
                            m,
                            hold,
                            permit,
                            stop_jobs.child_token(),
                        ));
                    }
                }
                Err(e) => {
                    drop(receiving);
                    drop(permits);
                    failures += 1;
                    ctx.counters.set_queue_ok(false);
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
}

#[cfg(test)]
mod tests;
