//! The seam between the drain and SQS: the three calls the drain makes, and
//! the plain values they carry.
//!
//! `aws::sqs::Sqs` implements [`Queue`] against SQS; unit tests implement
//! it with a scripted fake to reach partial batch failures, errors and
//! stalls under paused time. Nothing here talks to the network.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A receipt handle. Redacted in `Debug`: it lets anyone delete the message.
#[derive(Clone, PartialEq, Eq)]
pub struct Receipt(pub String);

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Receipt(<{} bytes redacted>)", self.0.len())
    }
}

/// One received message, in plain values.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub receipt: Receipt,
    pub body: String,
    /// `ApproximateReceiveCount`: 1 on first delivery.
    pub receive_count: u32,
    /// String and Number message attributes as (sanitized name, value).
    pub attributes: Vec<(String, String)>,
    /// When ReceiveMessage answered with it.
    pub received_at: tokio::time::Instant,
}

/// A failed queue call, with enough to log and to classify.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{api} on {url}: {detail}")]
pub struct QueueError {
    pub api: &'static str,
    pub url: String,
    /// Short class of the failure (`Throttling`, `dispatch`, ...): distinct
    /// kinds are logged once per backoff period.
    pub kind: String,
    pub detail: String,
    /// The queue does not exist (or is not ours to see).
    pub missing: bool,
}

/// A batch entry that SQS refused.
#[derive(Debug, Clone)]
pub struct EntryFailure {
    pub index: usize,
    pub code: String,
    pub message: String,
    /// The request was wrong (e.g. an expired receipt): retrying won't help.
    pub sender_fault: bool,
}

/// What a queue call returns.
pub type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, QueueError>> + Send + 'a>>;

/// The drain's SQS calls. Each returns the entries refused (batch calls)
/// or the messages received; an `Err` means the whole call failed and
/// nothing is known to have happened.
pub trait Queue: Send + Sync + 'static {
    /// The queue's URL, for logs and the jobs' environment.
    fn url(&self) -> &str;
    /// Long-polls for up to `max` (1..=10) messages, hidden for `lease`.
    fn receive(&self, max: usize, wait: Duration, lease: Duration) -> Call<'_, Vec<Received>>;
    /// Deletes up to 10 messages.
    fn delete_batch<'a>(&'a self, receipts: &'a [&'a Receipt]) -> Call<'a, Vec<EntryFailure>>;
    /// Sets the visibility of up to 10 messages (0 = visible at once).
    fn change_visibility_batch<'a>(
        &'a self,
        entries: &'a [(&'a Receipt, Duration)],
    ) -> Call<'a, Vec<EntryFailure>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_are_redacted() {
        let r = Receipt("secret-handle".into());
        assert!(!format!("{r:?}").contains("secret"));
    }
}
