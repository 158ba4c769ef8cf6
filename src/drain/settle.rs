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

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::occupancy::Hold;
use super::queue::{Copy, Queue, Receipt, Received, INTERRUPTIONS_ATTRIBUTE};
use crate::control::Task;
use crate::decide::batching::{to_send, BATCH};
pub use crate::decide::outcome::Action;
use crate::decide::outcome::{hand_back, HandBackBy};
use crate::status::counters::Counters;

/// One message to settle.
#[derive(Debug)]
pub struct Request {
    pub message_id: Arc<str>,
    pub receipt: Receipt,
    pub action: Action,
    /// The message counts as held until SQS has answered for it.
    pub hold: Hold,
    /// For [`Action::HandBack`]: the copy to send (its body, attributes
    /// and interruption count).
    pub copy: Option<Copy>,
}

impl Request {
    /// A hand-back of `m` for another worker, its budget untouched.
    pub fn hand_back(m: &Received, hold: Hold) -> Request {
        Request {
            message_id: Arc::from(m.id.as_str()),
            receipt: m.receipt.clone(),
            action: Action::HandBack,
            hold,
            copy: Some(Copy {
                body: m.body.clone(),
                attributes: m.raw_attributes.clone(),
                interruptions: m.interruptions.saturating_add(1),
            }),
        }
    }
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
/// Copies go at most this many bytes to a SendMessageBatch: the payload
/// limit of queues created before SQS raised it to 1 MiB.
const COPY_BATCH_BYTES: usize = 256 * 1024;

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
        // Hand-backs for another worker: they go at once.
        let mut hand_backs: Vec<Request> = Vec::new();
        // Once SQS refuses SendMessage, hand-backs are releases.
        let copies_allowed = AtomicBool::new(true);
        // Batches being settled: a call that stalls or is retried holds up
        // its own batch only.
        let mut in_flight: FuturesUnordered<Pin<Box<dyn Future<Output = ()> + Send + '_>>> =
            FuturesUnordered::new();
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
                    Action::HandBack => hand_backs.push(r),
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
                    in_flight.push(Box::pin(settle_batch(&*queue, &counters, batch)));
                }
            }
            for batch in copy_batches(std::mem::take(&mut hand_backs)) {
                in_flight.push(Box::pin(hand_back_batch(
                    &*queue,
                    &counters,
                    &copies_allowed,
                    batch,
                )));
            }
            if !open && in_flight.is_empty() && deletes.is_empty() && releases.is_empty() {
                return;
            }
        }
    }
}

/// Hand-backs in batches of at most 10 and [`COPY_BATCH_BYTES`].
fn copy_batches(hand_backs: Vec<Request>) -> Vec<Vec<Request>> {
    let mut batches: Vec<Vec<Request>> = Vec::new();
    let mut bytes = 0;
    for r in hand_backs {
        let size = r.copy.as_ref().map_or(0, Copy::size);
        let room = batches
            .last()
            .is_some_and(|b| b.len() < BATCH && bytes + size <= COPY_BATCH_BYTES);
        if !room {
            batches.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        batches.last_mut().expect("just pushed").push(r);
    }
    batches
}

/// Hands a batch back for another worker without spending the messages'
/// receives: sends their copies, deletes the originals whose copy SQS
/// accepted, and makes the rest visible at once (a copy that may or may
/// not have been accepted leaves a possible duplicate, never a loss).
async fn hand_back_batch(
    queue: &dyn Queue,
    counters: &Counters,
    copies_allowed: &AtomicBool,
    batch: Vec<Request>,
) {
    let fifo = queue.fifo();
    let (copies, mut releases): (Vec<Request>, Vec<Request>) =
        batch.into_iter().partition(|r| match &r.copy {
            Some(c) => {
                let has_counter = c.attributes.iter().any(|a| a.name == INTERRUPTIONS_ATTRIBUTE);
                let how = hand_back(
                    fifo,
                    c.attributes.len(),
                    has_counter,
                    copies_allowed.load(Relaxed),
                );
                if let HandBackBy::Release(why) = how {
                    tracing::debug!(message_id = %r.message_id, why, "handed back by visibility: its next receive counts towards maxReceiveCount");
                }
                how == HandBackBy::Copy
            }
            None => false,
        });
    let mut deletes = Vec::new();
    if !copies.is_empty() {
        let sent: Vec<Copy> = copies.iter().filter_map(|r| r.copy.clone()).collect();
        match queue.send_copies(&sent).await {
            Ok(failures) => {
                let mut refused = vec![None; copies.len()];
                for f in failures {
                    if let Some(slot) = refused.get_mut(f.index) {
                        *slot = Some(f);
                    }
                }
                for (r, f) in copies.into_iter().zip(refused) {
                    match f {
                        None => {
                            counters.copied();
                            deletes.push(r);
                        }
                        Some(f) => {
                            if crate::aws::sqs::access_denied(&f.code) {
                                refuse_copies(copies_allowed, &f.code);
                            }
                            tracing::warn!(message_id = %r.message_id, code = %f.code, error = %f.message, "SQS refused a hand-back's copy; the message is made visible again instead (its next receive counts towards maxReceiveCount)");
                            releases.push(r);
                        }
                    }
                }
            }
            Err(e) => {
                if e.denied {
                    refuse_copies(copies_allowed, &e.kind);
                } else {
                    tracing::warn!(error = %e, messages = copies.len(), "sending hand-backs' copies failed; the originals are made visible again instead (a copy that got through makes a duplicate)");
                }
                releases.extend(copies);
            }
        }
    }
    let release_now = |mut r: Request| {
        r.action = Action::Release(Duration::ZERO);
        r
    };
    let deletes: Vec<Request> = deletes
        .into_iter()
        .map(|mut r| {
            r.action = Action::Delete;
            r
        })
        .collect();
    let releases: Vec<Request> = releases.into_iter().map(release_now).collect();
    let mut settling = Vec::new();
    if !deletes.is_empty() {
        settling.push(settle_batch(queue, counters, deletes));
    }
    if !releases.is_empty() {
        settling.push(settle_batch(queue, counters, releases));
    }
    futures_util::future::join_all(settling).await;
}

/// SQS refused SendMessage: every later hand-back is a release. Said once.
fn refuse_copies(copies_allowed: &AtomicBool, code: &str) {
    if copies_allowed.swap(false, Relaxed) {
        tracing::error!(code, "SendMessage is not allowed on this queue (the instance role or the queue policy): hand-backs now make messages visible again instead of copying them, so interruptions count towards maxReceiveCount; grant sqs:SendMessage (README, IAM policy)");
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
                    Action::Delete | Action::HandBack => (&r.receipt, Duration::ZERO),
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
