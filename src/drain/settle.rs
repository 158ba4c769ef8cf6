//! Settles finished messages: deletes after success, visibility changes
//! after failure or hand-back — batched, retried, and logged when they fail.
//!
//! Jobs hand their message over and go; this task owns it until SQS has
//! answered (the message's [`Hold`] drops then). When stopped (at exit,
//! after every job has ended) it takes what is queued and flushes it all
//! before it returns. A message this task gives up on is never lost: it
//! becomes visible again when its current visibility runs out (and the log
//! says so, since a deleted-too-late message may run again).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep, timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use super::occupancy::Hold;
use super::queue::{Queue, Receipt};
use crate::control::Task;
use crate::decide::batching::{to_send, BATCH};
pub use crate::decide::outcome::Action;
use crate::status::counters::Counters;

/// One message to settle.
#[derive(Debug)]
pub struct Request {
    pub message_id: Arc<str>,
    pub receipt: Receipt,
    pub action: Action,
    /// The message counts as held until SQS has answered for it.
    pub hold: Hold,
}

/// A finished message waits at most this long for nine others to share its
/// request. Under load full batches go at once (a batch spans several
/// receive cycles); only the remainder lingers. Waiting costs a job nothing:
/// its slot is already free, and the message stays leased meanwhile. At
/// exit everything goes at once.
const LINGER: Duration = Duration::from_millis(200);
/// Whole-call failures are retried this many times (with backoff) before
/// the message is left to reappear on its own.
const ATTEMPTS: u32 = 5;

/// The settling task.
pub struct Settler {
    pub queue: Arc<dyn Queue>,
    pub requests: mpsc::UnboundedReceiver<Request>,
    pub counters: Arc<Counters>,
}

impl Task for Settler {
    const NAME: &'static str = "settler";

    /// Settles until stopped, then flushes everything queued.
    async fn run(self, stop: CancellationToken) {
        let Settler {
            queue,
            requests: mut rx,
            counters,
        } = self;
        // Pending requests, oldest first, with the time each arrived.
        let mut deletes: Vec<(Instant, Request)> = Vec::new();
        let mut releases: Vec<(Instant, Request)> = Vec::new();
        let mut open = true;
        while open || !deletes.is_empty() || !releases.is_empty() {
            let oldest = [deletes.first(), releases.first()]
                .into_iter()
                .flatten()
                .map(|(t, _)| *t)
                .min();
            let mut due = !open;
            let next = match oldest {
                _ if !open => None,
                None => tokio::select! {
                    r = rx.recv() => r,
                    () = stop.cancelled() => None,
                },
                Some(t) => tokio::select! {
                    r = timeout_at(t + LINGER, rx.recv()) => match r {
                        Ok(r) => r,
                        Err(_) => {
                            due = true;
                            None
                        }
                    },
                    () = stop.cancelled() => None,
                },
            };
            let mut push = |r: Request, now: Instant| match r.action {
                Action::Delete => deletes.push((now, r)),
                Action::Release(_) => releases.push((now, r)),
            };
            if let Some(first) = next {
                let now = Instant::now();
                push(first, now);
                while let Ok(r) = rx.try_recv() {
                    push(r, now);
                }
            } else if !due {
                // Stopped (or every sender gone): take what is queued,
                // flush everything and end.
                rx.close();
                let now = Instant::now();
                while let Ok(r) = rx.try_recv() {
                    push(r, now);
                }
                open = false;
                due = true;
            }
            let urgent = releases
                .iter()
                .any(|(_, r)| r.action == Action::Release(Duration::ZERO));
            let (d, r) = to_send(deletes.len(), releases.len(), urgent, due);
            let mut batches: Vec<Vec<Request>> = Vec::new();
            for (list, n) in [(&mut deletes, d), (&mut releases, r)] {
                let mut sent = list.drain(..n).map(|(_, r)| r).peekable();
                while sent.peek().is_some() {
                    batches.push(sent.by_ref().take(BATCH).collect());
                }
            }
            for batch in batches {
                settle_batch(&*queue, &counters, batch).await;
            }
        }
    }
}

/// Settles one batch (all deletes or all hand-backs): retries entries SQS
/// refused for a reason worth retrying and whole-call failures, up to
/// [`ATTEMPTS`], then gives up on the rest.
async fn settle_batch(queue: &dyn Queue, counters: &Counters, mut batch: Vec<Request>) {
    let is_delete = batch[0].action == Action::Delete;
    let mut attempt = 0;
    while !batch.is_empty() {
        attempt += 1;
        let result = if is_delete {
            let receipts: Vec<&Receipt> = batch.iter().map(|r| &r.receipt).collect();
            queue.delete_batch(&receipts).await
        } else {
            let entries: Vec<(&Receipt, Duration)> = batch
                .iter()
                .map(|r| match r.action {
                    Action::Release(v) => (&r.receipt, v),
                    Action::Delete => (&r.receipt, Duration::ZERO),
                })
                .collect();
            queue.change_visibility_batch(&entries).await
        };
        let verb = if is_delete { "delete" } else { "hand back" };
        match result {
            Ok(failures) => {
                let mut retry = Vec::new();
                let mut failed = vec![None; batch.len()];
                for f in failures {
                    if let Some(slot) = failed.get_mut(f.index) {
                        *slot = Some(f);
                    }
                }
                for (req, failure) in batch.drain(..).zip(failed) {
                    match failure {
                        None if is_delete => counters.deleted(),
                        None => counters.released(),
                        Some(f) if !f.sender_fault && attempt < ATTEMPTS => retry.push(req),
                        Some(f) => give_up(
                            counters,
                            is_delete,
                            &req,
                            &format!("{}: {}", f.code, f.message),
                        ),
                    }
                }
                batch = retry;
            }
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(error = %e, messages = batch.len(), attempt, "could not {verb} messages; retrying");
            }
            Err(e) => {
                for req in &batch {
                    give_up(counters, is_delete, req, &e.to_string());
                }
                batch.clear();
            }
        }
        if !batch.is_empty() {
            sleep(Duration::from_millis(250 << attempt.min(5))).await;
        }
    }
}

fn give_up(counters: &Counters, is_delete: bool, req: &Request, why: &str) {
    if is_delete {
        counters.delete_failed();
        tracing::error!(
            message_id = %req.message_id,
            error = why,
            "could not delete the message of a succeeded job; it will be redelivered when its visibility timeout ends and may run again"
        );
    } else {
        counters.release_failed();
        tracing::warn!(
            message_id = %req.message_id,
            error = why,
            "could not hand the message back; it becomes visible again when its current visibility timeout ends"
        );
    }
}

#[cfg(test)]
mod tests;
