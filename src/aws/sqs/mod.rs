//! SQS for the agent: the drain's calls ([`Queue`], implemented here) and
//! the queue's attributes (depths, redrive policy, the DLQ's URL) for the
//! start-up check, the fleet decision, tracking and the status page. Also
//! the one parser of queue ARNs and redrive policies, which the operator
//! commands (`ops/`) use too.
//!
//! Every call is counted in [`Counters`]. It makes no decisions: callers
//! say how many messages, which visibility, which receipts. It never logs a
//! receipt handle (they grant delete rights).

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry,
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};

mod plain;
pub use plain::{
    access_denied, parse_queue_arn, parse_redrive_policy, queue_missing, sanitize_attr_name,
    Depths, RedrivePolicy,
};
use plain::{entry_failures, to_received};

use crate::config::QueueConfig;
use crate::drain::queue::{
    AttributeValue, Call, Copy, EntryFailure, Queue, QueueError, Receipt, Received,
};
use crate::status::counters::{Api, Counters};

/// The queue being drained.
pub struct Sqs {
    /// Every call but ReceiveMessage, bounded by [`super::CALL`].
    client: aws_sdk_sqs::Client,
    /// ReceiveMessage, bounded by [`super::LONG_POLL`].
    poll: aws_sdk_sqs::Client,
    pub url: String,
    counters: Arc<Counters>,
}

impl Sqs {
    /// Builds the SQS client from the queue settings and the SDK's usual
    /// credential chain (instance profile on EC2). Makes no request.
    pub async fn connect(
        cfg: &QueueConfig,
        region: Option<String>,
        http: aws_smithy_runtime_api::client::http::SharedHttpClient,
        counters: Arc<Counters>,
    ) -> Sqs {
        let sdk = crate::aws::sdk_config(http, region, cfg.endpoint_url.as_deref()).await;
        // Every call is bounded by its attempt and operation timeouts, and
        // no SQS response is a long stream; the throughput watch would only
        // cost CPU on each request.
        let builder = aws_sdk_sqs::config::Builder::from(&sdk).stalled_stream_protection(
            aws_sdk_sqs::config::StalledStreamProtectionConfig::disabled(),
        );
        Sqs {
            client: aws_sdk_sqs::Client::from_conf(builder.clone().build()),
            poll: aws_sdk_sqs::Client::from_conf(
                builder
                    .timeout_config(crate::aws::LONG_POLL.timeouts())
                    .build(),
            ),
            url: cfg.url.clone(),
            counters,
        }
    }

    /// A batch call's answer: the entries that failed, or the call's error;
    /// either way counted.
    fn batch_answer<E>(
        &self,
        api: Api,
        r: Result<&[BatchResultErrorEntry], &SdkError<E>>,
    ) -> Result<Vec<EntryFailure>, QueueError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match r {
            Ok(failed) => {
                self.counters.request(api, true);
                Ok(entry_failures(failed))
            }
            Err(e) => Err(self.error(api, e)),
        }
    }

    fn error<E>(&self, api: Api, err: &SdkError<E>) -> QueueError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.counters.request(api, false);
        let code = err.code().map(str::to_string);
        let missing = queue_missing(code.as_deref());
        let denied = code.as_deref().is_some_and(access_denied);
        let kind = code.unwrap_or_else(|| match err {
            SdkError::DispatchFailure(_) => "dispatch".into(),
            SdkError::TimeoutError(_) => "timeout".into(),
            SdkError::ResponseError(_) => "response".into(),
            _ => "other".into(),
        });
        QueueError {
            api: api.name(),
            url: self.url.clone(),
            kind,
            detail: DisplayErrorContext(err).to_string(),
            missing,
            denied,
        }
    }

    /// Checks that the queue exists and is reachable.
    ///
    /// # Errors
    /// The failed call; `missing` is set when the queue does not exist.
    pub async fn check(&self) -> Result<(), QueueError> {
        self.backlog().await.map(|_| ())
    }

    /// One attribute of the queue (`None` if the queue has none).
    async fn attribute(&self, name: QueueAttributeName) -> Result<Option<String>, QueueError> {
        let r = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(name.clone())
            .send()
            .await;
        match r {
            Ok(out) => {
                self.counters.request(Api::GetQueueAttributes, true);
                Ok(out.attributes().and_then(|a| a.get(&name)).cloned())
            }
            Err(e) => Err(self.error(Api::GetQueueAttributes, &e)),
        }
    }

    /// Depths of the queue at `url` (this queue or its DLQ), for the status
    /// page: visible, in flight, delayed, and the DLQ's ARN from the redrive
    /// policy.
    ///
    /// # Errors
    /// The failed call.
    pub async fn depths(&self, url: &str) -> Result<Depths, QueueError> {
        let r = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await;
        match r {
            Ok(out) => {
                self.counters.request(Api::GetQueueAttributes, true);
                let attrs = out.attributes();
                let get = |n: QueueAttributeName| attrs.and_then(|a| a.get(&n));
                let num = |n| get(n).and_then(|v| v.parse().ok()).unwrap_or(0);
                Ok(Depths {
                    visible: num(QueueAttributeName::ApproximateNumberOfMessages),
                    in_flight: num(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
                    delayed: num(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
                    dead_letter_arn: get(QueueAttributeName::RedrivePolicy)
                        .and_then(|p| parse_redrive_policy(p))
                        .map(|p| p.dlq_arn),
                })
            }
            Err(e) => Err(self.error(Api::GetQueueAttributes, &e)),
        }
    }

    /// The URL of the queue with ARN `arn` (GetQueueUrl).
    ///
    /// # Errors
    /// The failed call, or an ARN that names no SQS queue.
    pub async fn url_of(&self, arn: &str) -> Result<String, QueueError> {
        let Some((account, name)) = parse_queue_arn(arn) else {
            return Err(QueueError {
                api: Api::GetQueueUrl.name(),
                url: self.url.clone(),
                kind: "bad ARN".into(),
                detail: format!("the redrive policy names {arn:?}, not an SQS queue ARN"),
                missing: false,
                denied: false,
            });
        };
        let r = self
            .client
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await;
        match r {
            Ok(out) => {
                self.counters.request(Api::GetQueueUrl, true);
                Ok(out.queue_url().unwrap_or_default().to_string())
            }
            Err(e) => Err(self.error(Api::GetQueueUrl, &e)),
        }
    }

    /// The queue's visible backlog (ApproximateNumberOfMessages).
    ///
    /// # Errors
    /// The failed call.
    pub async fn backlog(&self) -> Result<u64, QueueError> {
        let v = self
            .attribute(QueueAttributeName::ApproximateNumberOfMessages)
            .await?;
        Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// The DLQ's `maxReceiveCount` from this queue's redrive policy
    /// (`None`: the queue has no DLQ). Read at start when job-state
    /// tracking is on, to tell a failure that will be retried from one
    /// that sends the message to the DLQ.
    ///
    /// # Errors
    /// The failed call.
    pub async fn max_receives(&self) -> Result<Option<u32>, QueueError> {
        let v = self.attribute(QueueAttributeName::RedrivePolicy).await?;
        Ok(v.and_then(|p| parse_redrive_policy(&p))
            .map(|p| p.max_receive_count))
    }

    async fn receive_call(
        &self,
        max: usize,
        wait: Duration,
        lease: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        let r = self
            .poll
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(wait.as_secs() as i32)
            .visibility_timeout(lease.as_secs().min(i32::MAX as u64) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_attribute_names("All")
            .send()
            .await;
        match r {
            Ok(out) => {
                self.counters.request(Api::ReceiveMessage, true);
                Ok(out
                    .messages
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(to_received)
                    .collect())
            }
            Err(e) => Err(self.error(Api::ReceiveMessage, &e)),
        }
    }

    async fn delete_call(&self, receipts: &[&Receipt]) -> Result<Vec<EntryFailure>, QueueError> {
        let entries = receipts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&r.0)
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect();
        let r = self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await;
        self.batch_answer(Api::DeleteMessageBatch, r.as_ref().map(|out| out.failed()))
    }

    async fn change_visibility_call(
        &self,
        entries: &[(&Receipt, Duration)],
    ) -> Result<Vec<EntryFailure>, QueueError> {
        let req = entries
            .iter()
            .enumerate()
            .map(|(i, (r, v))| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&r.0)
                    .visibility_timeout(v.as_secs().min(i32::MAX as u64) as i32)
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect();
        let r = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.url)
            .set_entries(Some(req))
            .send()
            .await;
        self.batch_answer(
            Api::ChangeMessageVisibilityBatch,
            r.as_ref().map(|out| out.failed()),
        )
    }
}

impl Sqs {
    async fn send_copies_call(&self, copies: &[Copy]) -> Result<Vec<EntryFailure>, QueueError> {
        let entries = copies
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut b = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(String::from_utf8_lossy(&c.body));
                for a in c.attributes() {
                    let v = MessageAttributeValue::builder().data_type(a.data_type);
                    let v = match a.value {
                        AttributeValue::Text(t) => v.string_value(t),
                        AttributeValue::Binary(b) => v.binary_value(Blob::new(b)),
                    };
                    b = b.message_attributes(a.name, v.build().expect("data type is set"));
                }
                b.build().expect("id and body are set")
            })
            .collect();
        let r = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await;
        self.batch_answer(Api::SendMessageBatch, r.as_ref().map(|out| out.failed()))
    }
}

impl Queue for Sqs {
    fn url(&self) -> &str {
        &self.url
    }
    fn receive(&self, max: usize, wait: Duration, lease: Duration) -> Call<'_, Vec<Received>> {
        Box::pin(self.receive_call(max, wait, lease))
    }
    fn delete_batch<'a>(&'a self, receipts: &'a [&'a Receipt]) -> Call<'a, Vec<EntryFailure>> {
        Box::pin(self.delete_call(receipts))
    }
    fn change_visibility_batch<'a>(
        &'a self,
        entries: &'a [(&'a Receipt, Duration)],
    ) -> Call<'a, Vec<EntryFailure>> {
        Box::pin(self.change_visibility_call(entries))
    }
    fn send_copies<'a>(&'a self, copies: &'a [Copy]) -> Call<'a, Vec<EntryFailure>> {
        Box::pin(self.send_copies_call(copies))
    }
}
