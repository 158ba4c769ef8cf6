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

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{sleep, sleep_until, Instant};
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
/// Batches settled at once. A call that never answers holds its own batch
/// until its bound runs out; the others go on.
const IN_FLIGHT: usize = 8;
/// At exit, what is still unsettled after this long is left to SQS: each
/// message becomes visible again when its current visibility ends.
pub const FLUSH_PATIENCE: Duration = Duration::from_secs(20);

/// The settling task.
pub struct Settler {
    pub queue: Arc<dyn Queue>,
    pub requests: mpsc::UnboundedReceiver<Request>,
    pub counters: Arc<Counters>,
}

impl Task for Settler {
    const NAME: &'static str = "settler";

    /// Settles until stopped, then flushes everything queued (for at most
    /// [`FLUSH_PATIENCE`]).
    async fn run(self, stop: CancellationToken) {
        let Settler {
            queue,
            requests: mut rx,
            counters,
        } = self;
        // Pending requests, oldest first, with the time each arrived.
        let mut deletes: Vec<(Instant, Request)> = Vec::new();
        let mut releases: Vec<(Instant, Request)> = Vec::new();
        // Batches being settled: a call that stalls or is retried holds up
        // its own batch only.
        let mut in_flight = FuturesUnordered::new();
        let mut open = true;
        let mut flush_until: Option<Instant> = None;
        loop {
            let oldest = [deletes.first(), releases.first()]
                .into_iter()
                .flatten()
                .map(|(t, _)| *t)
                .min();
            let full = in_flight.len() >= IN_FLIGHT;
            let mut due = !open;
            let mut arrived = Vec::new();
            tokio::select! {
                r = rx.recv(), if open && !full => match r {
                    Some(r) => {
                        arrived.push(r);
                        while let Ok(r) = rx.try_recv() {
                            arrived.push(r);
                        }
                    }
                    None => open = false,
                },
                () = stop.cancelled(), if open => open = false,
                () = sleep_until(oldest.map_or_else(Instant::now, |t| t + LINGER)), if open && !full && oldest.is_some() => due = true,
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                () = sleep_until(flush_until.unwrap_or_else(Instant::now)), if flush_until.is_some() => {
                    tracing::warn!(batches = in_flight.len(), pending = deletes.len() + releases.len(), patience = ?FLUSH_PATIENCE, "exit: some messages were not settled in time; they become visible again when their visibility timeout ends (a succeeded job's message may run again)");
                    return;
                }
            }
            if !open && flush_until.is_none() {
                // Stopped (or every sender gone): take what is queued,
                // flush everything and end.
                rx.close();
                while let Ok(r) = rx.try_recv() {
                    arrived.push(r);
                }
                flush_until = Some(Instant::now() + FLUSH_PATIENCE);
                due = true;
            }
            let now = Instant::now();
            for r in arrived {
                match r.action {
                    Action::Delete => deletes.push((now, r)),
                    Action::Release(_) => releases.push((now, r)),
                }
            }
            let urgent = releases
                .iter()
                .any(|(_, r)| r.action == Action::Release(Duration::ZERO));
            let (d, r) = to_send(deletes.len(), releases.len(), urgent, due);
            for (list, n) in [(&mut deletes, d), (&mut releases, r)] {
                let mut sent = list.drain(..n).map(|(_, r)| r).peekable();
                while sent.peek().is_some() {
                    let batch: Vec<Request> = sent.by_ref().take(BATCH).collect();
                    in_flight.push(settle_batch(&*queue, &counters, batch));
                }
            }
            if !open && in_flight.is_empty() && deletes.is_empty() && releases.is_empty() {
                return;
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
