//! The tracking table from the operator's side: create it, read a job.
//!
//! Item shape (written by `tracking::Table::write`): partition key `job_id`
//! (S); `state`, `seq`, `final`, `attempts`, `queued_at`, `started_at`,
//! `finished_at`, `updated_at`, `instance_id`, `message_id`, `exit_code`,
//! `duration_ms`, `history` (a list of {state, at, attempt, instance_id,
//! exit_code}) and `expires_at` (epoch seconds, the table's TTL attribute).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};

use crate::tracking::{JobState, Table};

#[derive(Debug, Clone, thiserror::Error)]
pub enum TableError {
    #[error("job-state tracking is not configured; set [tracking] enabled = true and table = \"...\" (or DRAINERD_TRACKING_ENABLED=true)")]
    NotConfigured,
    #[error("tracking table {table}: {detail}")]
    Call { table: String, detail: String },
    #[error("tracking table {table} did not become ACTIVE within {waited:?}")]
    NotActive { table: String, waited: Duration },
}

impl TableError {
    /// The table or service could not be reached (exit 69), rather than a
    /// configuration problem.
    pub fn unavailable(&self) -> bool {
        matches!(self, TableError::Call { .. } | TableError::NotActive { .. })
    }
}

/// One recorded transition.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub state: String,
    pub at: String,
    pub attempt: u32,
    pub instance_id: Option<String>,
    pub exit_code: Option<i32>,
}

/// A job as the table knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobStatus {
    pub job_id: String,
    pub state: Option<JobState>,
    pub attempts: u32,
    pub queued_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub instance_id: Option<String>,
    pub message_id: Option<String>,
    pub exit_code: Option<i32>,
    pub duration_ms: Option<u64>,
    pub history: Vec<HistoryEntry>,
}

fn s(item: &HashMap<String, AttributeValue>, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}

fn n<T: std::str::FromStr>(item: &HashMap<String, AttributeValue>, k: &str) -> Option<T> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// Plain values from a table item.
pub fn from_item(item: &HashMap<String, AttributeValue>) -> JobStatus {
    let history = item
        .get("history")
        .and_then(|h| h.as_l().ok())
        .map(|l| {
            l.iter()
                .filter_map(|e| e.as_m().ok())
                .map(|m| HistoryEntry {
                    state: s(m, "state").unwrap_or_default(),
                    at: s(m, "at").unwrap_or_default(),
                    attempt: n(m, "attempt").unwrap_or(0),
                    instance_id: s(m, "instance_id"),
                    exit_code: n(m, "exit_code"),
                })
                .collect()
        })
        .unwrap_or_default();
    JobStatus {
        job_id: s(item, "job_id").unwrap_or_default(),
        state: s(item, "state").as_deref().and_then(JobState::parse),
        attempts: n(item, "attempts").unwrap_or(0),
        queued_at: s(item, "queued_at"),
        started_at: s(item, "started_at"),
        finished_at: s(item, "finished_at"),
        instance_id: s(item, "instance_id"),
        message_id: s(item, "message_id"),
        exit_code: n(item, "exit_code"),
        duration_ms: n(item, "duration_ms"),
        history,
    }
}

fn call_error<E, R>(table: &Table, e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> TableError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    TableError::Call {
        table: table.name.clone(),
        detail: DisplayErrorContext(e).to_string(),
    }
}

/// Reads one job (a strongly consistent read).
///
/// # Errors
/// The read failed.
pub async fn status(table: &Table, job_id: &str) -> Result<Option<JobStatus>, TableError> {
    let out = table
        .client
        .get_item()
        .table_name(&table.name)
        .key("job_id", AttributeValue::S(job_id.to_string()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| call_error(table, &e))?;
    Ok(out.item().map(from_item))
}

/// What `create` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Created,
    AlreadyExists,
}

/// Creates the table (on-demand billing, key `job_id`), waits until it is
/// ACTIVE (at most `patience`), and turns on TTL on `expires_at`. An
/// existing table is left as it is (TTL still switched on).
///
/// # Errors
/// A call failed or the table stayed inactive.
pub async fn create(table: &Table, patience: Duration) -> Result<Created, TableError> {
    let r = table
        .client
        .create_table()
        .table_name(&table.name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("job_id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("name and type are set"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("job_id")
                .key_type(KeyType::Hash)
                .build()
                .expect("name and type are set"),
        )
        .send()
        .await;
    let created = match r {
        Ok(_) => Created::Created,
        Err(e) if e.code() == Some("ResourceInUseException") => Created::AlreadyExists,
        Err(e) => return Err(call_error(table, &e)),
    };
    let start = std::time::Instant::now();
    loop {
        let d = table
            .client
            .describe_table()
            .table_name(&table.name)
            .send()
            .await
            .map_err(|e| call_error(table, &e))?;
        if d.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            break;
        }
        if start.elapsed() > patience {
            return Err(TableError::NotActive {
                table: table.name.clone(),
                waited: patience,
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let ttl = table
        .client
        .update_time_to_live()
        .table_name(&table.name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expires_at")
                .enabled(true)
                .build()
                .expect("name and flag are set"),
        )
        .send()
        .await;
    match ttl {
        Ok(_) => {}
        // Already on (a second `table create`): fine.
        Err(e)
            if e.code() == Some("ValidationException")
                && e.message().is_some_and(|m| m.contains("already enabled")) => {}
        Err(e) => return Err(call_error(table, &e)),
    }
    Ok(created)
}

/// Marks a dead-lettered job Queued again (after `dlq redrive` moved its
/// message back): the one write allowed to leave a final state, and only
/// DeadLettered. Its sequence starts over, as the moved message's receive
/// count does.
///
/// # Errors
/// The job is not DeadLettered (condition), or the call failed.
pub async fn requeue(table: &Table, job_id: &str) -> Result<(), TableError> {
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let entry = AttributeValue::M(HashMap::from([
        ("state".to_string(), AttributeValue::S("Queued".into())),
        ("at".to_string(), AttributeValue::S(now.clone())),
        ("attempt".to_string(), AttributeValue::N("0".into())),
    ]));
    table
        .client
        .update_item()
        .table_name(&table.name)
        .key("job_id", AttributeValue::S(job_id.to_string()))
        .update_expression("SET #state = :queued, #seq = :zero, #final = :false, updated_at = :at, history = list_append(if_not_exists(history, :empty), :entry)")
        .condition_expression("#state = :dead")
        .expression_attribute_names("#state", "state")
        .expression_attribute_names("#seq", "seq")
        .expression_attribute_names("#final", "final")
        .expression_attribute_values(":queued", AttributeValue::S("Queued".into()))
        .expression_attribute_values(":dead", AttributeValue::S("DeadLettered".into()))
        .expression_attribute_values(":zero", AttributeValue::N("0".into()))
        .expression_attribute_values(":false", AttributeValue::Bool(false))
        .expression_attribute_values(":at", AttributeValue::S(now))
        .expression_attribute_values(":empty", AttributeValue::L(vec![]))
        .expression_attribute_values(":entry", AttributeValue::L(vec![entry]))
        .send()
        .await
        .map_err(|e| call_error(table, &e))?;
    Ok(())
}
