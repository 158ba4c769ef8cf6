//! Intake: long-polls SQS for as many messages as there are free job slots
//! and starts a job per message (on a FIFO queue, behind the messages of
//! its group).
//!
//! It owns intake and nothing else: it never touches a running job. One
//! long poll is in flight while the queue is idle; while it is backlogged
//! (a receive brought as many messages as it asked for) another receive
//! starts each time a full batch of slots is free
//! ([`crate::decide::intake`]), so a box with many slots is not bounded by
//! one round trip per ten jobs. Once intake is cancelled no receive
//! starts; those in flight finish and whatever they bring is handed
//! straight back. While the fleet task pauses intake, or jobs cannot
//! start, it waits (probing the command in the latter case). SQS errors
//! back off with jitter and are logged once per kind per 30 s.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::groups::{Groups, Item};
use super::occupancy::{Hold, Receiving};
use super::queue::{Queue, QueueError, Received};
use super::runner::{self, JobContext};
use super::settle::Request;
use super::slots::Slots;
use crate::control::Task;
use crate::decide::backoff::error_backoff;
use crate::decide::intake::{batch, next_receive, Ask};

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

/// A finished receive: its slots, its answer, and its guard (held until
/// the messages are held).
type Received_ = (
    Vec<OwnedSemaphorePermit>,
    Result<Vec<Received>, QueueError>,
    Receiving,
);
type InFlight<'a> = FuturesUnordered<Pin<Box<dyn Future<Output = Received_> + Send + 'a>>>;

impl Task for Receiver {
    const NAME: &'static str = "receiver";

    /// Receives while there are free slots and intake is open; once it is
    /// closed, lets the receives in flight finish, hands back what they
    /// bring, and returns.
    async fn run(self, intake: CancellationToken) {
        let mut state = State::new(&self);
        let mut in_flight: InFlight<'_> = FuturesUnordered::new();
        loop {
            let closed = intake.is_cancelled();
            if closed && in_flight.is_empty() {
                return;
            }
            let load = self.ctx.occupancy.now();
            let waiting = load.paused || load.cannot_start;
            let retry_at = state.retry_at.filter(|t| Instant::now() < *t);
            let backing_off = retry_at.is_some();
            let ask = if closed || waiting || backing_off {
                Ask::Nothing
            } else {
                next_receive(in_flight.len(), state.backlogged, batch(self.slots.size()))
            };
            tokio::select! {
                biased;
                () = intake.cancelled(), if !closed => {}
                Some((permits, result, receiving)) = in_flight.next(), if !in_flight.is_empty() => {
                    state.received(&self, &intake, permits, result, receiving);
                }
                permits = take(&self.slots, ask), if ask != Ask::Nothing => {
                    in_flight.push(self.receive(permits));
                }
                () = state.probe(&self), if load.cannot_start && !closed && in_flight.is_empty() => {}
                () = self.ctx.occupancy.wait_until(|l| !l.paused && !l.cannot_start), if waiting && !load.cannot_start => {}
                () = sleep_until(retry_at.unwrap_or_else(Instant::now)), if backing_off => {}
            }
        }
    }
}

/// Takes the slots `ask` says, waiting for them.
async fn take(slots: &Slots, ask: Ask) -> Vec<OwnedSemaphorePermit> {
    match ask {
        Ask::UpTo(n) => slots.acquire_batch(n, GATHER).await,
        Ask::Exactly(n) => slots.acquire_exactly(n).await,
        Ask::Nothing => std::future::pending().await,
    }
}

impl Receiver {
    /// One receive for `permits.len()` messages, bounded.
    fn receive(
        &self,
        permits: Vec<OwnedSemaphorePermit>,
    ) -> Pin<Box<dyn Future<Output = Received_> + Send + '_>> {
        let receiving = self.ctx.occupancy.receiving();
        let (wait, lease) = {
            let c = self.ctx.config.borrow();
            (c.queue.wait_time.0, c.queue.lease.0)
        };
        Box::pin(async move {
            let bound = wait + RECEIVE_SLACK;
            let r =
                match tokio::time::timeout(bound, self.queue.receive(permits.len(), wait, lease))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(QueueError {
                        api: "ReceiveMessage",
                        url: self.queue.url().to_string(),
                        kind: "no answer".into(),
                        detail: format!("no answer within {bound:?}"),
                        missing: false,
                        denied: false,
                    }),
                };
            (permits, r, receiving)
        })
    }
}

/// What the receive loop remembers between receives.
struct State {
    /// The last receive brought as many messages as it asked for.
    backlogged: bool,
    failures: u32,
    /// No receive starts before this (after an SQS error).
    retry_at: Option<Instant>,
    last_kind: Option<String>,
    last_logged: Instant,
    seq: u64,
    probe_in: Duration,
    fifo: bool,
    groups: Groups,
}

impl State {
    fn new(r: &Receiver) -> State {
        State {
            backlogged: false,
            failures: 0,
            retry_at: None,
            last_kind: None,
            last_logged: Instant::now(),
            seq: 0,
            probe_in: PROBE_FIRST,
            fifo: r.queue.fifo(),
            groups: Groups::default(),
        }
    }

    /// A receive answered: start a job per message (or hand them back if
    /// intake closed meanwhile), or back off after an error.
    fn received(
        &mut self,
        r: &Receiver,
        intake: &CancellationToken,
        permits: Vec<OwnedSemaphorePermit>,
        result: Result<Vec<Received>, QueueError>,
        receiving: Receiving,
    ) {
        let ctx = &r.ctx;
        let messages = match result {
            Ok(m) => m,
            Err(e) => {
                drop(receiving);
                drop(permits);
                self.failed(r, &e);
                return;
            }
        };
        // Held before the receive counts as over: the fleet task never sees
        // empty hands while messages are in them.
        let messages: Vec<(Received, Hold)> = messages
            .into_iter()
            .map(|m| (m, ctx.occupancy.hold()))
            .collect();
        drop(receiving);
        ctx.counters.set_queue_ok(true);
        ctx.counters.received(messages.len());
        self.backlogged = !messages.is_empty() && messages.len() >= permits.len();
        if self.failures > 0 {
            tracing::info!(failures = self.failures, "SQS reachable again; receiving");
            self.failures = 0;
            self.last_kind = None;
        }
        let mut permits = permits.into_iter();
        for (m, hold) in messages {
            // None: intake closed meanwhile, or SQS returned more than asked.
            let permit = if intake.is_cancelled() {
                None
            } else {
                permits.next()
            };
            let Some(permit) = permit else {
                let _ = ctx.settle.send(Request::hand_back(&m, hold));
                continue;
            };
            self.seq += 1;
            self.start(r, m, hold, permit);
        }
    }

    /// Starts one message's job: at once, or on a FIFO queue behind the
    /// messages of its group already here.
    fn start(&mut self, r: &Receiver, m: Received, hold: Hold, permit: OwnedSemaphorePermit) {
        match m.group.clone().filter(|_| self.fifo) {
            Some(group) => {
                let item = Item {
                    key: self.seq,
                    message: m,
                    hold,
                    permit,
                };
                self.groups.run(group, item, &r.ctx, &r.jobs, &r.stop_jobs);
            }
            None => {
                r.jobs.spawn(runner::run(
                    r.ctx.clone(),
                    self.seq,
                    m,
                    hold,
                    permit,
                    r.stop_jobs.child_token(),
                ));
            }
        }
    }

    fn failed(&mut self, r: &Receiver, e: &QueueError) {
        self.failures += 1;
        self.backlogged = false;
        r.ctx.counters.set_queue_ok(false);
        let delay = error_backoff(
            self.failures,
            Duration::from_secs(1),
            Duration::from_secs(30),
            fastrand::f64(),
        );
        self.retry_at = Some(Instant::now() + delay);
        let new_kind = self.last_kind.as_deref() != Some(e.kind.as_str());
        if new_kind || self.last_logged.elapsed() >= Duration::from_secs(30) {
            tracing::warn!(error = %e, kind = %e.kind, failures = self.failures, retry_in = ?delay, "cannot receive from SQS; backing off");
            self.last_kind = Some(e.kind.clone());
            self.last_logged = Instant::now();
        }
    }

    /// Jobs cannot start (the agent's fault): wait, probe the command, and
    /// open intake again once it can start.
    async fn probe(&mut self, r: &Receiver) {
        tokio::time::sleep(self.probe_in).await;
        let (argv0, dir) = {
            let c = r.ctx.config.borrow();
            (c.job.command[0].clone(), c.job.working_dir.clone())
        };
        match super::process::can_start(&argv0, dir.as_deref()) {
            Ok(()) => {
                tracing::info!(command = %argv0, "the job command can start again: taking work");
                r.ctx.occupancy.can_start_again();
                r.ctx.counters.set_start_problem(None);
                self.probe_in = PROBE_FIRST;
            }
            Err(e) => {
                tracing::debug!(error = %e, retry_in = ?self.probe_in, "jobs still cannot start");
                self.probe_in = (self.probe_in * 2).min(PROBE_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests;
