//! Settles finished messages: deletes after success, visibility changes
//! after failure or hand-back — batched, retried, and logged when they fail.
//!
//! Jobs hand their message over and go; this task owns it until SQS has
//! answered. At shutdown the channel closes and everything queued is flushed
//! before the agent exits. A message this task gives up on is never lost:
//! it becomes visible again when its current visibility runs out (and the
//! log says so, since a deleted-too-late message may run again).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep, timeout};

use crate::queue::{Queue, Receipt};
use crate::stats::Stats;

/// What to do with a finished message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Delete,
    /// Make visible again after this long (0 = at once).
    Release(Duration),
}

#[derive(Debug)]
pub struct Request {
    pub message_id: Arc<str>,
    pub receipt: Receipt,
    pub action: Action,
}

/// Waiting this long for more finished jobs fills batches under load (a
/// batch spans several receive cycles) and costs a job nothing: its slot is
/// already free, and the message stays leased meanwhile. At shutdown the
/// channel closes and the wait ends at once.
const LINGER: Duration = Duration::from_millis(200);
const BATCH: usize = 10;
/// Whole-call failures are retried this many times (with backoff) before
/// the message is left to reappear on its own.
const ATTEMPTS: u32 = 5;

/// Runs until the sender side is dropped and every request is settled.
pub async fn run(queue: Arc<Queue>, mut rx: mpsc::UnboundedReceiver<Request>, stats: Arc<Stats>) {
    let mut deletes: Vec<Request> = Vec::new();
    let mut releases: Vec<Request> = Vec::new();
    while let Some(first) = rx.recv().await {
        let push =
            |r: Request, deletes: &mut Vec<Request>, releases: &mut Vec<Request>| match r.action {
                Action::Delete => deletes.push(r),
                Action::Release(_) => releases.push(r),
            };
        push(first, &mut deletes, &mut releases);
        loop {
            while let Ok(r) = rx.try_recv() {
                push(r, &mut deletes, &mut releases);
            }
            // Hand-backs at visibility 0 (shutdown, interruption) are urgent:
            // another worker should have them now.
            let urgent = releases
                .iter()
                .any(|r| r.action == Action::Release(Duration::ZERO));
            if deletes.len() >= BATCH || releases.len() >= BATCH || urgent {
                break;
            }
            match timeout(LINGER, rx.recv()).await {
                Ok(Some(r)) => push(r, &mut deletes, &mut releases),
                _ => break,
            }
        }
        while !deletes.is_empty() {
            let n = deletes.len().min(BATCH);
            let batch: Vec<Request> = deletes.drain(..n).collect();
            settle_batch(&queue, &stats, batch).await;
        }
        while !releases.is_empty() {
            let n = releases.len().min(BATCH);
            let batch: Vec<Request> = releases.drain(..n).collect();
            settle_batch(&queue, &stats, batch).await;
        }
    }
}

async fn settle_batch(queue: &Queue, stats: &Stats, mut batch: Vec<Request>) {
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
                        None => {
                            let c = if is_delete {
                                &stats.messages_deleted
                            } else {
                                &stats.messages_released
                            };
                            c.fetch_add(1, Relaxed);
                        }
                        Some(f) if !f.sender_fault && attempt < ATTEMPTS => retry.push(req),
                        Some(f) => give_up(
                            stats,
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
                    give_up(stats, is_delete, req, &e.to_string());
                }
                batch.clear();
            }
        }
        if !batch.is_empty() {
            sleep(Duration::from_millis(250 << attempt.min(5))).await;
        }
    }
}

fn give_up(stats: &Stats, is_delete: bool, req: &Request, why: &str) {
    if is_delete {
        stats.delete_failures.fetch_add(1, Relaxed);
        tracing::error!(
            message_id = %req.message_id,
            error = why,
            "could not delete the message of a succeeded job; it will be redelivered when its visibility timeout ends and may run again"
        );
    } else {
        stats.release_failures.fetch_add(1, Relaxed);
        tracing::warn!(
            message_id = %req.message_id,
            error = why,
            "could not hand the message back; it becomes visible again when its current visibility timeout ends"
        );
    }
}
