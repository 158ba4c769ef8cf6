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
use tokio::time::{sleep, timeout_at, Instant};

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

/// A finished message waits at most this long for nine others to share its
/// request. Under load full batches go at once (a batch spans several
/// receive cycles); only the remainder lingers. Waiting costs a job nothing:
/// its slot is already free, and the message stays leased meanwhile. At
/// shutdown the channel closes and everything goes at once.
const LINGER: Duration = Duration::from_millis(200);
const BATCH: usize = 10;
/// Whole-call failures are retried this many times (with backoff) before
/// the message is left to reappear on its own.
const ATTEMPTS: u32 = 5;

/// How many pending deletes and hand-backs to send now. Only full batches
/// go before the oldest has waited `LINGER` (`due`); hand-backs at
/// visibility 0 (`urgent`: shutdown, interruption) go at once, since
/// another worker should have them now.
pub fn to_send(deletes: usize, releases: usize, urgent: bool, due: bool) -> (usize, usize) {
    let full = |n: usize| n - n % BATCH;
    if due {
        return (deletes, releases);
    }
    (
        full(deletes),
        if urgent { releases } else { full(releases) },
    )
}

/// Runs until the sender side is dropped and every request is settled.
pub async fn run(queue: Arc<Queue>, mut rx: mpsc::UnboundedReceiver<Request>, stats: Arc<Stats>) {
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
            None => rx.recv().await,
            Some(t) => match timeout_at(t + LINGER, rx.recv()).await {
                Ok(r) => r,
                Err(_) => {
                    due = true;
                    None
                }
            },
        };
        if let Some(first) = next {
            let now = Instant::now();
            let mut push = |r: Request| match r.action {
                Action::Delete => deletes.push((now, r)),
                Action::Release(_) => releases.push((now, r)),
            };
            push(first);
            while let Ok(r) = rx.try_recv() {
                push(r);
            }
        } else if !due {
            // The channel closed: flush everything and end.
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

#[cfg(test)]
mod tests {
    use super::to_send;

    #[test]
    fn only_full_batches_go_before_the_linger_ends() {
        assert_eq!(to_send(0, 0, false, false), (0, 0));
        assert_eq!(to_send(9, 3, false, false), (0, 0));
        assert_eq!(to_send(18, 10, false, false), (10, 10));
        assert_eq!(to_send(27, 0, false, false), (20, 0));
    }

    #[test]
    fn due_or_urgent_sends_the_rest() {
        assert_eq!(to_send(18, 3, false, true), (18, 3));
        // A hand-back at visibility 0 does not wait; deletes still may.
        assert_eq!(to_send(4, 3, true, false), (0, 3));
    }
}
