//! The producer side: enqueue jobs for drainerd workers and look up their
//! state.
//!
//! A job is one SQS message. Its id is a UUID carried in the message
//! attribute `drainerd-job-id`, so it stays the same across redeliveries
//! and a trip through the dead-letter queue (a message from another
//! producer without one gets its SQS message id as job id). With a
//! tracking table ([`Enqueuer::with_tracking`]) the enqueuer records each
//! job as Queued and [`Enqueuer::status`] reads what the workers recorded.
//!
//! ```no_run
//! # async fn example() -> Result<(), drainerd::ops::enqueue::EnqueueError> {
//! use drainerd::ops::enqueue::{Enqueuer, Job};
//!
//! let queue = "https://sqs.us-east-1.amazonaws.com/123456789012/reports";
//! let enqueuer = Enqueuer::connect(queue).await;
//! let id = enqueuer
//!     .enqueue("{\"report\": 42}", &[("tenant".into(), "acme".into())])
//!     .await?;
//! println!("accepted as job {id}"); // e.g. answer 202 with /jobs/{id}
//!
//! // Many at once: SendMessageBatch, 10 per call, one result per job.
//! let jobs: Vec<Job> = (0..25).map(|i| Job::new(format!("{{\"n\": {i}}}"))).collect();
//! for result in enqueuer.enqueue_many(&jobs).await {
//!     match result {
//!         Ok(id) => println!("queued {id}"),
//!         Err(e) => eprintln!("not queued: {e}"),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! This module never runs jobs and never deletes messages from the work
//! queue (only `redrive` deletes, from the DLQ, after re-sending).

pub mod batch;
mod job;

pub use job::{validate, validate_for, Job, JobId, MAX_ATTRIBUTES};

use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

#[cfg(test)]
use crate::tracking::job_id_of;
use crate::tracking::{JobState, Table, Update, JOB_ID_ATTRIBUTE};
use batch::{BatchReply, BatchSender, Entry, EntryError, Sent};

pub use super::table::{self, HistoryEntry, JobStatus};

/// Why a job was not (or may not have been) enqueued.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnqueueError {
    #[error("bad job: {0}")]
    Invalid(String),
    #[error("queue {url} refused job {job_id}: {code}: {message}")]
    Refused {
        url: String,
        job_id: JobId,
        code: String,
        message: String,
    },
    /// The call failed as a whole: the job may or may not be queued. It was
    /// not sent again (a standard queue would then hold it twice).
    #[error("queue {url}: job {job_id} may or may not be queued (the call failed: {detail}); check with `drainerd job {job_id}` or the consumer before sending it again")]
    Unknown {
        url: String,
        job_id: JobId,
        detail: String,
    },
}

/// Enqueues jobs on one queue.
#[derive(Clone)]
pub struct Enqueuer {
    client: aws_sdk_sqs::Client,
    url: String,
    delay: Option<Duration>,
    table: Option<Table>,
}

impl Enqueuer {
    /// An enqueuer for `queue_url` with the SDK's usual credential chain;
    /// the region is taken from the URL (else AWS_REGION / profile).
    pub async fn connect(queue_url: &str) -> Enqueuer {
        let region = crate::config::region_from_queue_url(queue_url);
        let sdk = crate::aws::sdk_config(crate::aws::https_client(), region, None).await;
        Enqueuer::new(aws_sdk_sqs::Client::new(&sdk), queue_url)
    }

    /// An enqueuer from an SQS client you built.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: &str) -> Enqueuer {
        Enqueuer {
            client,
            url: queue_url.to_string(),
            delay: None,
            table: None,
        }
    }

    /// Every job waits this long before it can be received (SQS
    /// `DelaySeconds`, at most 15 minutes).
    pub fn with_delay(mut self, delay: Duration) -> Enqueuer {
        self.delay = Some(delay.min(Duration::from_secs(900)));
        self
    }

    /// Records each job as Queued in `table`, and lets [`Enqueuer::status`]
    /// read it. A failed tracking write is logged; the job is queued anyway.
    pub fn with_tracking(mut self, table: Table) -> Enqueuer {
        self.table = Some(table);
        self
    }

    pub fn queue_url(&self) -> &str {
        &self.url
    }

    /// Enqueues one job; returns its id.
    ///
    /// # Errors
    /// The job is invalid, SQS refused it, or the call failed (outcome
    /// unknown: see [`EnqueueError::Unknown`]).
    pub async fn enqueue(
        &self,
        body: &str,
        attributes: &[(String, String)],
    ) -> Result<JobId, EnqueueError> {
        let job = Job {
            body: body.to_string(),
            attributes: attributes.to_vec(),
            ..Job::default()
        };
        self.enqueue_many(std::slice::from_ref(&job))
            .await
            .pop()
            .expect("one result per job")
    }

    /// Enqueues many jobs with SendMessageBatch (≤ 10 per call); one result
    /// per job, in order. Entries SQS refuses transiently are retried; none
    /// is sent twice.
    pub async fn enqueue_many(&self, jobs: &[Job]) -> Vec<Result<JobId, EnqueueError>> {
        self.enqueue_many_with_progress(jobs, |_| {}).await
    }

    /// [`Enqueuer::enqueue_many`], calling `progress(jobs done)` after each
    /// batch.
    pub async fn enqueue_many_with_progress(
        &self,
        jobs: &[Job],
        progress: impl FnMut(usize),
    ) -> Vec<Result<JobId, EnqueueError>> {
        let mut results: Vec<Option<Result<JobId, EnqueueError>>> = vec![None; jobs.len()];
        let mut ids = Vec::new();
        let mut entries = Vec::new();
        let mut positions = Vec::new();
        let fifo = self.url.ends_with(".fifo");
        for (i, job) in jobs.iter().enumerate() {
            if let Err(e) = validate(job).and_then(|()| validate_for(job, fifo)) {
                results[i] = Some(Err(EnqueueError::Invalid(e)));
                continue;
            }
            let id = JobId::new();
            let mut attributes = vec![(JOB_ID_ATTRIBUTE.to_string(), id.0.clone())];
            attributes.extend(job.attributes.iter().cloned());
            entries.push(Entry {
                body: job.body.clone(),
                attributes,
                group: job.group.clone(),
                dedup_id: job.dedup_id.clone(),
            });
            ids.push(id);
            positions.push(i);
        }
        let sent = batch::send_all(self, &entries, progress).await;
        let mut queued = Vec::new();
        for ((pos, id), s) in positions.into_iter().zip(ids).zip(sent) {
            results[pos] = Some(match s {
                Sent::Ok(message_id) => {
                    queued.push((id.clone(), message_id));
                    Ok(id)
                }
                Sent::Refused { code, message } => Err(EnqueueError::Refused {
                    url: self.url.clone(),
                    job_id: id,
                    code,
                    message,
                }),
                Sent::Unknown(detail) => Err(EnqueueError::Unknown {
                    url: self.url.clone(),
                    job_id: id,
                    detail,
                }),
            });
        }
        self.record_queued(queued).await;
        results
            .into_iter()
            .map(|r| r.expect("every job has a result"))
            .collect()
    }

    /// Writes Queued for each job (a few at a time). Failures are logged,
    /// never returned: the jobs are queued either way. A Queued that lands
    /// after a worker's Running is refused by the table's condition.
    async fn record_queued(&self, queued: Vec<(JobId, String)>) {
        let Some(table) = &self.table else { return };
        use futures_util::StreamExt;
        let failures = futures_util::stream::iter(queued)
            .map(|(id, message_id)| async move {
                let mut u = Update::new(id.as_str(), JobState::Queued, 0);
                u.message_id = Some(message_id);
                match table.write(&u).await {
                    Ok(()) | Err(crate::tracking::TrackError::Stale(_)) => None,
                    Err(e) => Some((id, e)),
                }
            })
            .buffer_unordered(8)
            .filter_map(|r| async move { r })
            .collect::<Vec<_>>()
            .await;
        if let Some((id, e)) = failures.first() {
            tracing::warn!(table = %table.name, failed = failures.len(), first_job_id = %id, error = %e, "could not record jobs as Queued in the tracking table; the jobs are queued");
        }
    }

    /// The job's tracked state and history; `None` if the table has no
    /// such job (never tracked, or expired).
    ///
    /// # Errors
    /// No tracking table configured, or the read failed.
    pub async fn status(&self, id: &JobId) -> Result<Option<JobStatus>, table::TableError> {
        let Some(t) = &self.table else {
            return Err(table::TableError::NotConfigured);
        };
        table::status(t, id.as_str()).await
    }
}

impl BatchSender for Enqueuer {
    async fn send_batch(&self, entries: &[&Entry]) -> Result<BatchReply, String> {
        let req: Vec<SendMessageBatchRequestEntry> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut b = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&e.body)
                    .set_delay_seconds(self.delay.map(|d| d.as_secs() as i32))
                    .set_message_group_id(e.group.clone())
                    .set_message_deduplication_id(e.dedup_id.clone());
                for (k, v) in &e.attributes {
                    b = b.message_attributes(
                        k,
                        MessageAttributeValue::builder()
                            .data_type("String")
                            .string_value(v)
                            .build()
                            .expect("data type is set"),
                    );
                }
                b.build().expect("id and body are set")
            })
            .collect();
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(req))
            .send()
            .await
            .map_err(|e| DisplayErrorContext(&e).to_string())?;
        Ok(BatchReply {
            sent: out
                .successful()
                .iter()
                .filter_map(|s| Some((s.id().parse().ok()?, s.message_id().to_string())))
                .collect(),
            failed: out
                .failed()
                .iter()
                .map(|f| EntryError {
                    index: f.id().parse().unwrap_or(usize::MAX),
                    code: f.code().to_string(),
                    message: f.message().unwrap_or_default().to_string(),
                    sender_fault: f.sender_fault(),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests;
