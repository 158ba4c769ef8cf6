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

/// The message attribute that counts how often instances handed a job
/// back (shutdown, spot, rebalance, lifecycle, leaving, a command that
/// could not start) by sending a copy: jobs see it as
/// `DRAINERD_INTERRUPTIONS`.
pub const INTERRUPTIONS_ATTRIBUTE: &str = "drainerd-interruptions";

/// One message attribute as SQS holds it, for a faithful copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    /// `String`, `Number`, `Binary`, or one with a custom suffix.
    pub data_type: String,
    pub value: AttributeValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    Text(String),
    Binary(Vec<u8>),
}

/// One received message, in plain values.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub receipt: Receipt,
    /// Shared, not copied: the job's stdin, and a hand-back's copy.
    pub body: bytes::Bytes,
    /// `ApproximateReceiveCount`: 1 on first delivery (of this copy).
    pub receive_count: u32,
    /// Times instances handed the job back by copy
    /// ([`INTERRUPTIONS_ATTRIBUTE`]).
    pub interruptions: u32,
    /// String and Number message attributes as (sanitized name, value).
    pub attributes: Vec<(String, String)>,
    /// Every message attribute as SQS holds it.
    pub raw_attributes: Vec<Attribute>,
    /// `MessageGroupId`: on a FIFO queue, messages of one group run one at
    /// a time, in order; on a standard (fair) queue it names the tenant.
    pub group: Option<String>,
    /// When ReceiveMessage answered with it.
    pub received_at: tokio::time::Instant,
}

/// A copy of a message to hand back: its body and attributes, with the
/// interruption counter set to `interruptions`.
#[derive(Debug, Clone)]
pub struct Copy {
    pub body: bytes::Bytes,
    pub attributes: Vec<Attribute>,
    pub interruptions: u32,
}

impl Copy {
    /// Its attributes as sent: the originals without the old counter, and
    /// the new counter.
    pub fn attributes(&self) -> impl Iterator<Item = Attribute> + '_ {
        self.attributes
            .iter()
            .filter(|a| a.name != INTERRUPTIONS_ATTRIBUTE)
            .cloned()
            .chain(std::iter::once(Attribute {
                name: INTERRUPTIONS_ATTRIBUTE.into(),
                data_type: "Number".into(),
                value: AttributeValue::Text(self.interruptions.to_string()),
            }))
    }
    /// The bytes SQS counts against a batch's payload limit.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes()
                .map(|a| {
                    a.name.len()
                        + a.data_type.len()
                        + match &a.value {
                            AttributeValue::Text(t) => t.len(),
                            AttributeValue::Binary(b) => b.len(),
                        }
                })
                .sum::<usize>()
    }
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
    /// The call is not allowed (queue policy, role): retrying cannot help.
    pub denied: bool,
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
    /// Sends up to 10 copies of messages being handed back.
    fn send_copies<'a>(&'a self, copies: &'a [Copy]) -> Call<'a, Vec<EntryFailure>>;
    /// A FIFO queue (its URL ends in `.fifo`).
    fn fifo(&self) -> bool {
        self.url().ends_with(".fifo")
    }
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
