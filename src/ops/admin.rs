//! The queue from the operator's side: depths, the dead-letter queue, and
//! moving dead-lettered messages back.
//!
//! Redrive is receive from the DLQ → send to the source queue → delete from
//! the DLQ, in batches of 10. (SQS's own `StartMessageMoveTask` would do it
//! server-side, but the emulator the tests use lacks it, and doing it here
//! lets drainerd keep each job's id and reset its tracked state.) The order
//! is send-then-delete, so a crash or a failed delete leaves a message in
//! both queues — it may run twice — but never in neither: at-least-once,
//! like everything else in drainerd. A message whose send failed stays in
//! the DLQ (it is visible there again after [`REDRIVE_LEASE`]).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};

use crate::aws::sqs::{
    parse_queue_arn, parse_redrive_policy, queue_missing, Depths, RedrivePolicy,
};

/// How long a DLQ message being moved stays hidden from other readers.
pub const REDRIVE_LEASE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, thiserror::Error)]
#[error("{api} on {url}: {detail}")]
pub struct AdminError {
    pub api: &'static str,
    pub url: String,
    pub detail: String,
    /// The queue does not exist.
    pub missing: bool,
}

/// What a redrive did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moved {
    /// Sent to the source queue and deleted from the DLQ.
    pub moved: u64,
    /// Sent, but the delete from the DLQ failed: now in both queues.
    pub duplicated: u64,
    /// Not sent: left in the DLQ.
    pub failed: u64,
    /// Job ids of the moved messages (those that carry one).
    pub job_ids: Vec<String>,
}

/// Operator calls on one queue and its DLQ.
pub struct Admin {
    client: aws_sdk_sqs::Client,
    pub url: String,
}

impl Admin {
    pub fn new(client: aws_sdk_sqs::Client, url: &str) -> Admin {
        Admin {
            client,
            url: url.to_string(),
        }
    }

    fn error<E>(&self, api: &'static str, url: &str, e: &SdkError<E>) -> AdminError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        AdminError {
            api,
            url: url.to_string(),
            detail: DisplayErrorContext(e).to_string(),
            missing: queue_missing(e.code()),
        }
    }

    async fn attributes(
        &self,
        url: &str,
    ) -> Result<HashMap<QueueAttributeName, String>, AdminError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(|e| self.error("GetQueueAttributes", url, &e))?;
        Ok(out.attributes().cloned().unwrap_or_default())
    }

    /// The counters of `url` (this queue or its DLQ).
    ///
    /// # Errors
    /// The call failed.
    pub async fn depth(&self, url: &str) -> Result<Depths, AdminError> {
        let a = self.attributes(url).await?;
        let n = |k: QueueAttributeName| a.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(Depths {
            visible: n(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: n(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
            dead_letter_arn: a
                .get(&QueueAttributeName::RedrivePolicy)
                .and_then(|p| parse_redrive_policy(p))
                .map(|p| p.dlq_arn),
        })
    }

    /// This queue's redrive policy, if it has one.
    ///
    /// # Errors
    /// The call failed.
    pub async fn redrive_policy(&self) -> Result<Option<RedrivePolicy>, AdminError> {
        let a = self.attributes(&self.url).await?;
        Ok(a.get(&QueueAttributeName::RedrivePolicy)
            .and_then(|p| parse_redrive_policy(p)))
    }

    /// The DLQ's URL from its ARN.
    ///
    /// # Errors
    /// A malformed ARN or a failed lookup.
    pub async fn queue_url_of(&self, arn: &str) -> Result<String, AdminError> {
        let Some((account, name)) = parse_queue_arn(arn) else {
            return Err(AdminError {
                api: "GetQueueUrl",
                url: arn.to_string(),
                detail: "not an SQS queue ARN".into(),
                missing: false,
            });
        };
        let out = self
            .client
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .map_err(|e| self.error("GetQueueUrl", arn, &e))?;
        Ok(out.queue_url().unwrap_or_default().to_string())
    }

    /// Moves up to `limit` messages from `dlq_url` back to this queue,
    /// calling `progress(moved so far)` after each batch. Stops when the
    /// DLQ answers empty twice in a row.
    ///
    /// # Errors
    /// Receiving from the DLQ failed before anything could be moved.
    pub async fn redrive(
        &self,
        dlq_url: &str,
        limit: Option<u64>,
        mut progress: impl FnMut(&Moved),
    ) -> Result<Moved, AdminError> {
        let fifo = self.url.ends_with(".fifo");
        let mut done = Moved::default();
        let mut empty = 0;
        while empty < 2 {
            let seen = done.moved + done.duplicated + done.failed;
            let want = limit.map_or(10, |l| l.saturating_sub(seen).min(10));
            if want == 0 {
                break;
            }
            let out = self
                .client
                .receive_message()
                .queue_url(dlq_url)
                .max_number_of_messages(want as i32)
                .wait_time_seconds(1)
                .visibility_timeout(REDRIVE_LEASE.as_secs() as i32)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
                .send()
                .await
                .map_err(|e| self.error("ReceiveMessage", dlq_url, &e))?;
            let messages = out.messages();
            if messages.is_empty() {
                empty += 1;
                continue;
            }
            empty = 0;
            let entries: Vec<SendMessageBatchRequestEntry> = messages
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let mut b = SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(m.body().unwrap_or_default())
                        .set_message_attributes(m.message_attributes().cloned());
                    if fifo {
                        let group = m
                            .attributes()
                            .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                            .cloned()
                            .unwrap_or_else(|| "redrive".into());
                        b = b
                            .message_group_id(group)
                            .message_deduplication_id(m.message_id().unwrap_or_default());
                    }
                    b.build().expect("id and body are set")
                })
                .collect();
            let sent: Vec<usize> = match self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => {
                    for f in out.failed() {
                        tracing::warn!(code = %f.code(), error = f.message().unwrap_or_default(), "could not send a dead-lettered message back; it stays in the DLQ");
                    }
                    out.successful()
                        .iter()
                        .filter_map(|s| s.id().parse().ok())
                        .collect()
                }
                Err(e) => {
                    tracing::warn!(error = %DisplayErrorContext(&e), "could not send dead-lettered messages back; they stay in the DLQ");
                    Vec::new()
                }
            };
            done.failed += (messages.len() - sent.len()) as u64;
            if sent.is_empty() {
                progress(&done);
                continue;
            }
            let deletes: Vec<DeleteMessageBatchRequestEntry> = sent
                .iter()
                .filter_map(|&i| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(messages.get(i)?.receipt_handle()?)
                        .build()
                        .ok()
                })
                .collect();
            let not_deleted: Vec<usize> = match self
                .client
                .delete_message_batch()
                .queue_url(dlq_url)
                .set_entries(Some(deletes))
                .send()
                .await
            {
                Ok(out) => out
                    .failed()
                    .iter()
                    .filter_map(|f| f.id().parse().ok())
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %DisplayErrorContext(&e), "moved messages could not be deleted from the DLQ; they are now in both queues");
                    sent.clone()
                }
            };
            for &i in &sent {
                if not_deleted.contains(&i) {
                    done.duplicated += 1;
                } else {
                    done.moved += 1;
                }
                let id = messages[i]
                    .message_attributes()
                    .and_then(|a| a.get(crate::tracking::JOB_ID_ATTRIBUTE))
                    .and_then(|v| v.string_value())
                    .map(str::to_string)
                    .or_else(|| messages[i].message_id().map(str::to_string));
                done.job_ids.extend(id);
            }
            progress(&done);
        }
        Ok(done)
    }
}
