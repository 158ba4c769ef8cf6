//! A scripted [`Queue`] for unit tests of the drain under paused time.
//!
//! It stands in for SQS where moto cannot: moto never refuses part of a
//! batch, never fails a call on request and never stalls. Each batch call
//! takes the next scripted [`Reply`] (all entries succeed once the script
//! is empty); each receive takes the next scripted [`Receive`] (an empty
//! long poll of `wait` once it is empty). Every call is recorded.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use super::queue::{Call, Copy, EntryFailure, Queue, QueueError, Receipt, Received};

/// How the fake answers one batch call.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Every entry succeeds.
    Ok,
    /// These entries are refused (SQS's per-entry `Failed` list); with
    /// `sender_fault`, as a request SQS will never accept (an expired
    /// receipt), else as a transient failure worth retrying.
    Refuse {
        indices: Vec<usize>,
        sender_fault: bool,
    },
    /// The whole call fails (e.g. a 500 or a dropped connection).
    Fail,
    /// The call never answers (a black-holed connection; the real client's
    /// timeouts bound it, the fake does not).
    Stall,
}

/// How the fake answers one receive.
#[derive(Debug)]
pub enum Receive {
    /// These messages, after `after`.
    Messages {
        after: Duration,
        messages: Vec<Received>,
    },
    /// The call fails.
    Fail,
}

/// One recorded batch call: the API and its entries' receipts (with the
/// visibility asked for, for visibility changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub api: &'static str,
    pub entries: Vec<(String, Option<Duration>)>,
}

#[derive(Default)]
pub struct FakeQueue {
    replies: Mutex<VecDeque<Reply>>,
    receives: Mutex<VecDeque<Receive>>,
    calls: Mutex<Vec<Recorded>>,
    receive_calls: Mutex<Vec<usize>>,
    /// Receives under way now, and the most ever at once.
    receiving: std::sync::atomic::AtomicUsize,
    most_receiving: std::sync::atomic::AtomicUsize,
}

/// Counts a receive as under way until dropped.
struct Under<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Under<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A message as a receive returns it; its receipt is `r-<id>`.
pub fn message(id: &str) -> Received {
    Received {
        id: id.into(),
        receipt: Receipt(format!("r-{id}")),
        body: bytes::Bytes::from(format!("body of {id}")),
        receive_count: 1,
        interruptions: 0,
        attributes: Vec::new(),
        raw_attributes: Vec::new(),
        group: None,
        received_at: tokio::time::Instant::now(),
    }
}

impl FakeQueue {
    pub fn reply(&self, r: Reply) -> &Self {
        self.replies.lock().unwrap().push_back(r);
        self
    }
    pub fn receive_next(&self, r: Receive) -> &Self {
        self.receives.lock().unwrap().push_back(r);
        self
    }
    /// Batch calls made so far.
    pub fn calls(&self) -> Vec<Recorded> {
        self.calls.lock().unwrap().clone()
    }
    /// How many messages each receive asked for.
    pub fn receive_calls(&self) -> Vec<usize> {
        self.receive_calls.lock().unwrap().clone()
    }
    /// The most receives that were under way at once.
    pub fn most_receiving(&self) -> usize {
        self.most_receiving
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn answer(
        &self,
        api: &'static str,
        entries: Vec<(String, Option<Duration>)>,
    ) -> Call<'static, Vec<EntryFailure>> {
        self.calls.lock().unwrap().push(Recorded { api, entries });
        let reply = self.replies.lock().unwrap().pop_front();
        let r = match reply.unwrap_or(Reply::Ok) {
            Reply::Stall => return Box::pin(std::future::pending()),
            Reply::Ok => Ok(Vec::new()),
            Reply::Refuse {
                indices,
                sender_fault,
            } => Ok(indices
                .into_iter()
                .map(|index| EntryFailure {
                    index,
                    code: if sender_fault {
                        "ReceiptHandleIsInvalid"
                    } else {
                        "InternalError"
                    }
                    .into(),
                    message: "scripted".into(),
                    sender_fault,
                })
                .collect()),
            Reply::Fail => Err(error(api)),
        };
        Box::pin(async move { r })
    }
}

fn error(api: &'static str) -> QueueError {
    QueueError {
        api,
        url: "fake".into(),
        kind: "scripted".into(),
        detail: "scripted failure".into(),
        missing: false,
        denied: false,
    }
}

impl Queue for FakeQueue {
    fn url(&self) -> &str {
        "https://sqs.fake/1/q"
    }
    fn receive(&self, max: usize, wait: Duration, _lease: Duration) -> Call<'_, Vec<Received>> {
        self.receive_calls.lock().unwrap().push(max);
        let next = self.receives.lock().unwrap().pop_front();
        let now = self
            .receiving
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        self.most_receiving
            .fetch_max(now, std::sync::atomic::Ordering::SeqCst);
        let under = Under(&self.receiving);
        Box::pin(async move {
            let _under = under;
            match next {
                Some(Receive::Messages { after, messages }) => {
                    tokio::time::sleep(after).await;
                    Ok(messages)
                }
                Some(Receive::Fail) => Err(error("ReceiveMessage")),
                None => {
                    tokio::time::sleep(wait).await;
                    Ok(Vec::new())
                }
            }
        })
    }
    fn delete_batch<'a>(&'a self, receipts: &'a [&'a Receipt]) -> Call<'a, Vec<EntryFailure>> {
        let entries = receipts.iter().map(|r| (r.0.clone(), None)).collect();
        self.answer("DeleteMessageBatch", entries)
    }
    fn send_copies<'a>(&'a self, copies: &'a [Copy]) -> Call<'a, Vec<EntryFailure>> {
        let entries = copies
            .iter()
            .map(|c| (String::from_utf8_lossy(&c.body).into_owned(), None))
            .collect();
        self.answer("SendMessageBatch", entries)
    }
    fn change_visibility_batch<'a>(
        &'a self,
        entries: &'a [(&'a Receipt, Duration)],
    ) -> Call<'a, Vec<EntryFailure>> {
        let entries = entries
            .iter()
            .map(|(r, v)| (r.0.clone(), Some(*v)))
            .collect();
        self.answer("ChangeMessageVisibilityBatch", entries)
    }
}
