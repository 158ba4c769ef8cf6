//! Job-state tracking (optional, `[tracking]`): one DynamoDB item per job,
//! written by the producer (Queued) and by the agent (every transition).
//!
//! This module owns the item's shape, the ordering rule that keeps a late,
//! duplicate or older update from moving a job backwards, and the agent's
//! background writer. It must never block, delay or lose a job: the agent
//! hands updates to a bounded in-memory queue with `try_send` and goes on
//! settling its message; a separate task writes them. When that queue is
//! full (DynamoDB slow or down) updates are dropped, counted and logged —
//! the message's fate never waits on the table.
//!
//! Ordering: each update carries `seq = attempt × 4 + rank` (Queued 0;
//! Running 1; an attempt's outcome 2) and the write is conditional on the
//! stored `seq` being lower and the job not being final (Succeeded or
//! DeadLettered). A conditional write that fails is an update that came too
//! late: it is counted as stale and dropped. Updates of one job go through
//! one writer lane, so they reach the table in the order they were made.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::TrackingConfig;
use crate::system::clock::Later;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::AttributeValue;

/// The message attribute that carries a job's id (a UUID set by the
/// enqueuer). It survives redelivery and a move through the DLQ.
pub const JOB_ID_ATTRIBUTE: &str = "drainerd-job-id";
/// The attribute as the agent sees it (names are sanitized, see
/// `aws::sqs::sanitize_attr_name`).
pub const JOB_ID_ATTRIBUTE_SANITIZED: &str = "DRAINERD_JOB_ID";

/// The job id of a received message: its `drainerd-job-id` attribute, or
/// else its message id (a message from another producer).
pub fn job_id_of(message_id: &str, sanitized_attributes: &[(String, String)]) -> String {
    sanitized_attributes
        .iter()
        .find(|(k, _)| k == JOB_ID_ATTRIBUTE_SANITIZED)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| message_id.to_string())
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    Queued,
    Running,
    /// Exit 0. Final.
    Succeeded,
    /// Failed, and drainerd could not read the queue's redrive policy at
    /// start, so it cannot tell whether the message comes back.
    Failed,
    /// Failed; handed back with backoff and will be delivered again.
    Retrying,
    /// Stopped by drainerd (shutdown, interruption); handed back at once.
    HandedBack,
    /// Failed on the receive that reached the DLQ's `maxReceiveCount`:
    /// SQS moves it to the DLQ instead of delivering it again. Final.
    DeadLettered,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Retrying,
        JobState::HandedBack,
        JobState::DeadLettered,
    ];
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "Queued",
            JobState::Running => "Running",
            JobState::Succeeded => "Succeeded",
            JobState::Failed => "Failed",
            JobState::Retrying => "Retrying",
            JobState::HandedBack => "HandedBack",
            JobState::DeadLettered => "DeadLettered",
        }
    }
    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.name() == s)
    }
    /// Nothing moves a job out of a final state.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::DeadLettered)
    }
    fn rank(self) -> u64 {
        match self {
            JobState::Queued => 0,
            JobState::Running => 1,
            _ => 2,
        }
    }
}

/// The order of updates: a later attempt beats an earlier one; within an
/// attempt, Running beats Queued and the outcome beats Running.
pub fn seq(state: JobState, attempt: u32) -> u64 {
    attempt as u64 * 4 + state.rank()
}

/// Whether an update may replace what the table holds (the rule the
/// conditional write enforces, as a plain function).
pub fn supersedes(stored: Option<(JobState, u64)>, new_seq: u64) -> bool {
    match stored {
        None => true,
        Some((state, seq)) => !state.is_final() && seq < new_seq,
    }
}

/// The state a failed attempt leaves the job in. `max_receives`: the DLQ's
/// `maxReceiveCount` (`Some(None)`: the queue has no DLQ; `None`: unknown).
pub fn failure_state(receive_count: u32, max_receives: Option<Option<u32>>) -> JobState {
    match max_receives {
        None => JobState::Failed,
        Some(None) => JobState::Retrying,
        Some(Some(max)) if receive_count >= max => JobState::DeadLettered,
        Some(Some(_)) => JobState::Retrying,
    }
}

/// One transition to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub job_id: String,
    pub state: JobState,
    /// The receive count (0 for Queued).
    pub attempt: u32,
    pub at: SystemTime,
    pub message_id: Option<String>,
    pub instance_id: Option<String>,
    pub exit_code: Option<i32>,
    pub duration: Option<Duration>,
}

impl Update {
    pub fn new(job_id: &str, state: JobState, attempt: u32) -> Update {
        Update {
            job_id: job_id.to_string(),
            state,
            attempt,
            at: SystemTime::now(),
            message_id: None,
            instance_id: None,
            exit_code: None,
            duration: None,
        }
    }
}

/// Why a write did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TrackError {
    /// The table holds a newer or final state: this update came too late.
    #[error("job {0}: the table already holds a newer or final state; update ignored")]
    Stale(String),
    #[error("tracking table {table}: {detail}")]
    Table { table: String, detail: String },
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// The job table: conditional transition writes.
#[derive(Clone)]
pub struct Table {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub name: String,
    ttl: Duration,
}

impl Table {
    /// Builds the DynamoDB client (no request) with the shared HTTP client.
    pub async fn connect(
        cfg: &TrackingConfig,
        region: Option<String>,
        http: aws_smithy_runtime_api::client::http::SharedHttpClient,
    ) -> Table {
        let region = cfg.region.clone().or(region);
        let sdk = crate::aws::sdk_config(http, region, cfg.endpoint_url.as_deref()).await;
        Table::from_client(aws_sdk_dynamodb::Client::new(&sdk), &cfg.table, cfg.ttl.0)
    }

    pub fn from_client(client: aws_sdk_dynamodb::Client, name: &str, ttl: Duration) -> Table {
        Table {
            client,
            name: name.to_string(),
            ttl,
        }
    }

    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    /// Writes one transition if it supersedes what the table holds
    /// ([`supersedes`]); creates the item if there is none. Appends the
    /// transition to the item's history.
    ///
    /// # Errors
    /// [`TrackError::Stale`] when the condition refused it; otherwise the
    /// failed call.
    pub async fn write(&self, u: &Update) -> Result<(), TrackError> {
        let s = |v: &str| AttributeValue::S(v.to_string());
        let n = |v: u64| AttributeValue::N(v.to_string());
        let at = rfc3339(u.at);
        let mut entry = HashMap::from([
            ("state".to_string(), s(u.state.name())),
            ("at".to_string(), s(&at)),
            ("attempt".to_string(), n(u.attempt as u64)),
        ]);
        let mut sets = vec![
            "#state = :state",
            "#seq = :seq",
            "#final = :final",
            "updated_at = :at",
            "expires_at = :exp",
            "history = list_append(if_not_exists(history, :empty), :entry)",
        ];
        let mut values = HashMap::from([
            (":state".to_string(), s(u.state.name())),
            (":seq".to_string(), n(seq(u.state, u.attempt))),
            (
                ":final".to_string(),
                AttributeValue::Bool(u.state.is_final()),
            ),
            (":false".to_string(), AttributeValue::Bool(false)),
            (":at".to_string(), s(&at)),
            (":exp".to_string(), n(epoch(u.at.later(self.ttl)))),
            (":empty".to_string(), AttributeValue::L(vec![])),
        ]);
        match u.state {
            JobState::Queued => sets.push("queued_at = if_not_exists(queued_at, :at)"),
            JobState::Running => {
                sets.push("started_at = :at");
                sets.push("attempts = :attempts");
                values.insert(":attempts".into(), n(u.attempt as u64));
            }
            _ => {
                sets.push("finished_at = :at");
                sets.push("attempts = :attempts");
                values.insert(":attempts".into(), n(u.attempt as u64));
            }
        }
        if let Some(m) = &u.message_id {
            sets.push("message_id = :mid");
            values.insert(":mid".into(), s(m));
        }
        if let Some(i) = &u.instance_id {
            sets.push("instance_id = :iid");
            values.insert(":iid".into(), s(i));
            entry.insert("instance_id".into(), s(i));
        }
        if let Some(c) = u.exit_code {
            sets.push("exit_code = :code");
            values.insert(":code".into(), AttributeValue::N(c.to_string()));
            entry.insert("exit_code".into(), AttributeValue::N(c.to_string()));
        }
        if let Some(d) = u.duration {
            sets.push("duration_ms = :dur");
            values.insert(":dur".into(), n(d.as_millis() as u64));
        }
        values.insert(
            ":entry".into(),
            AttributeValue::L(vec![AttributeValue::M(entry)]),
        );
        let r = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("job_id", s(&u.job_id))
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(
                "attribute_not_exists(job_id) OR (#seq < :seq AND #final = :false)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#seq", "seq")
            .expression_attribute_names("#final", "final")
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                Err(TrackError::Stale(u.job_id.clone()))
            }
            Err(e) => Err(TrackError::Table {
                table: self.name.clone(),
                detail: DisplayErrorContext(&e).to_string(),
            }),
        }
    }
}

mod writer;
pub use writer::{Recorder, RecorderStats, Writer};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_attempts_and_later_stages_win() {
        assert!(seq(JobState::Running, 1) > seq(JobState::Queued, 0));
        assert!(seq(JobState::Succeeded, 1) > seq(JobState::Running, 1));
        assert!(seq(JobState::Running, 2) > seq(JobState::Retrying, 1));
        assert_eq!(seq(JobState::Retrying, 1), seq(JobState::Succeeded, 1));
    }

    #[test]
    fn nothing_moves_a_job_backwards_or_out_of_a_final_state() {
        let run1 = seq(JobState::Running, 1);
        assert!(supersedes(None, 0));
        assert!(supersedes(Some((JobState::Queued, 0)), run1));
        // A late Queued after Running; a duplicate Running.
        assert!(!supersedes(Some((JobState::Running, run1)), 0));
        assert!(!supersedes(Some((JobState::Running, run1)), run1));
        // Nothing after Succeeded, not even a later attempt's Running.
        let done = seq(JobState::Succeeded, 1);
        assert!(!supersedes(
            Some((JobState::Succeeded, done)),
            seq(JobState::Running, 2)
        ));
        // Retrying then the next attempt runs.
        let retry = seq(JobState::Retrying, 1);
        assert!(supersedes(
            Some((JobState::Retrying, retry)),
            seq(JobState::Running, 2)
        ));
        let dl = seq(JobState::DeadLettered, 3);
        assert!(!supersedes(
            Some((JobState::DeadLettered, dl)),
            seq(JobState::Running, 4)
        ));
    }

    #[test]
    fn failures_become_retrying_until_the_dlq_takes_them() {
        assert_eq!(failure_state(1, Some(Some(3))), JobState::Retrying);
        assert_eq!(failure_state(3, Some(Some(3))), JobState::DeadLettered);
        assert_eq!(failure_state(9, Some(None)), JobState::Retrying);
        assert_eq!(failure_state(1, None), JobState::Failed);
    }

    #[test]
    fn state_names_round_trip() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.name()), Some(s));
        }
        assert_eq!(JobState::parse("Done"), None);
    }
}
