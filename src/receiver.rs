//! The receive loop: long-polls SQS for as many messages as there are free
//! job slots and starts a job task per message.
//!
//! It owns intake and nothing else: it never touches a running job. Once
//! intake is cancelled it starts no new receive; a receive already in flight
//! finishes (at most one long poll) and whatever it returns is handed
//! straight back. SQS errors back off with jitter and are logged once per
//! kind per 30 s.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::policy::error_backoff;
use crate::queue::Queue;
use crate::runner::{self, JobContext};
use crate::settle::{Action, Request};
use crate::slots::Slots;

/// How long a receive waits for more slots to free up once one has: short
/// against any job, long enough that jobs ending together share a request.
const GATHER: Duration = Duration::from_millis(25);

/// Receives while there are free slots and intake is open. An in-flight
/// receive is allowed to finish (at most one long poll); messages that
/// arrive after intake closed are handed straight back.
pub async fn run(
    queue: Arc<Queue>,
    slots: Arc<Slots>,
    ctx: Arc<JobContext>,
    jobs: TaskTracker,
    intake: CancellationToken,
    mut paused: watch::Receiver<bool>,
    stop_jobs: CancellationToken,
) {
    let mut failures: u32 = 0;
    let mut last_kind: Option<String> = None;
    let mut last_logged = Instant::now();
    let mut seq: u64 = 0;
    loop {
        // Paused (the fleet logic is about to leave the group): wait.
        while *paused.borrow() {
            tokio::select! {
                biased;
                () = intake.cancelled() => return,
                r = paused.changed() => if r.is_err() { break },
            }
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
        // A receive that never answers would silently stop the agent.
        if *paused.borrow() {
            continue;
        }
        ctx.stats
            .receiving
            .store(true, std::sync::atomic::Ordering::SeqCst);
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
        ctx.stats
            .receiving
            .store(false, std::sync::atomic::Ordering::SeqCst);
        match r {
            Ok(messages) => {
                ctx.stats
                    .queue_ok
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                ctx.stats
                    .messages_received
                    .fetch_add(messages.len() as u64, std::sync::atomic::Ordering::SeqCst);
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
                ctx.stats
                    .queue_ok
                    .store(false, std::sync::atomic::Ordering::Relaxed);
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
