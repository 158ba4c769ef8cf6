//! Sending many messages: batches of at most 10 and 256 KiB, per-entry
//! failures retried, nothing sent twice.
//!
//! The logic is written against [`BatchSender`] so it can be tested with a
//! fake that fails chosen entries (moto never fails one entry of a batch;
//! SQS does — `SendMessageBatch` answers 200 with a `Failed` list, e.g.
//! `InternalError` or throttling for some entries, and each entry carries
//! `SenderFault`). Only the entries SQS reports as failed with
//! `SenderFault = false` are sent again; an entry that succeeded is never
//! resent. A call that fails as a whole (network, 5xx after the SDK's own
//! retries) is NOT repeated by this code: SQS may have accepted it, and a
//! standard queue does not deduplicate, so its entries are reported as
//! "outcome unknown" with their job ids rather than risk sending twice.

use std::time::Duration;

use crate::ops::cost::{MAX_BATCH, SEND_BATCH_BYTES};

/// One message to send: body and message attributes (the job id
/// included), and its FIFO group and deduplication id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    pub body: String,
    pub attributes: Vec<(String, String)>,
    pub group: Option<String>,
    pub dedup_id: Option<String>,
}

impl Entry {
    /// Bytes SQS counts toward the batch's payload: the body plus each
    /// attribute's name, type ("String") and value.
    pub fn size(&self) -> u64 {
        let attrs: usize = self
            .attributes
            .iter()
            .map(|(k, v)| k.len() + v.len() + "String".len())
            .sum();
        (self.body.len() + attrs) as u64
    }
}

/// What SQS said about one batch call, by index within the call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchReply {
    /// (index, message id)
    pub sent: Vec<(usize, String)>,
    pub failed: Vec<EntryError>,
}

/// One refused entry.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryError {
    pub index: usize,
    pub code: String,
    pub message: String,
    /// The entry itself is wrong (too large, bad attribute): do not retry.
    pub sender_fault: bool,
}

/// The result for one entry of [`send_all`].
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// Accepted, with SQS's message id.
    Ok(String),
    /// Refused (for good, or after every retry).
    Refused { code: String, message: String },
    /// The call carrying it failed as a whole: it may or may not be queued.
    Unknown(String),
}

/// One `SendMessageBatch` call.
#[allow(async_fn_in_trait)]
pub trait BatchSender {
    /// Sends up to 10 entries in one call.
    ///
    /// # Errors
    /// The call failed as a whole (a message for the report).
    async fn send_batch(&self, entries: &[&Entry]) -> Result<BatchReply, String>;
}

/// Retries of the failed entries of one batch (so 4 calls at most).
pub const ENTRY_RETRIES: u32 = 3;

/// Groups entries into calls of at most 10 and [`SEND_BATCH_BYTES`]
/// (an entry larger than that goes alone), keeping their order.
pub fn plan(entries: &[Entry]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let mut bytes = 0;
    for (i, e) in entries.iter().enumerate() {
        let n = e.size();
        if !cur.is_empty() && (cur.len() == MAX_BATCH as usize || bytes + n > SEND_BATCH_BYTES) {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        cur.push(i);
        bytes += n;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Sends every entry; returns one result per entry, in order, and calls
/// `progress(done)` after each batch.
pub async fn send_all<S: BatchSender>(
    sender: &S,
    entries: &[Entry],
    mut progress: impl FnMut(usize),
) -> Vec<Sent> {
    let mut results: Vec<Option<Sent>> = vec![None; entries.len()];
    let mut done = 0;
    for group in plan(entries) {
        let mut pending = group.clone();
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let batch: Vec<&Entry> = pending.iter().map(|&i| &entries[i]).collect();
            let reply = match sender.send_batch(&batch).await {
                Ok(r) => r,
                Err(e) => {
                    for &i in &pending {
                        results[i] = Some(Sent::Unknown(e.clone()));
                    }
                    break;
                }
            };
            for (k, id) in reply.sent {
                if let Some(&i) = pending.get(k) {
                    results[i] = Some(Sent::Ok(id));
                }
            }
            let mut retry = Vec::new();
            for f in reply.failed {
                let Some(&i) = pending.get(f.index) else {
                    continue;
                };
                if !f.sender_fault && attempt <= ENTRY_RETRIES {
                    retry.push(i);
                } else {
                    results[i] = Some(Sent::Refused {
                        code: f.code,
                        message: f.message,
                    });
                }
            }
            // An entry SQS neither accepted nor refused: unknown, not resent.
            for &i in &pending {
                if results[i].is_none() && !retry.contains(&i) {
                    results[i] = Some(Sent::Unknown(
                        "SQS's answer did not mention this entry".into(),
                    ));
                }
            }
            pending = retry;
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(4))).await;
            }
        }
        done += group.len();
        progress(done);
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Sent::Unknown("not sent".into())))
        .collect()
}

#[cfg(test)]
mod tests;
