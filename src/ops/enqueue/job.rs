//! A job as a producer describes it, its id, and the checks it must pass
//! before it is sent.

use std::fmt;

use crate::tracking::JOB_ID_ATTRIBUTE;

/// A job's id: a UUID (or, for messages from other producers, the SQS
/// message id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub String);

impl JobId {
    /// A fresh random (v4) UUID.
    pub fn new() -> JobId {
        JobId(uuid::Uuid::new_v4().to_string())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for JobId {
    fn default() -> Self {
        JobId::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A job to enqueue: the body (the job's stdin), message attributes (the
/// job's `DRAINERD_ATTR_*` environment), and on a FIFO queue its message
/// group and deduplication id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Job {
    pub body: String,
    pub attributes: Vec<(String, String)>,
    /// `MessageGroupId`: required on a FIFO queue (jobs of one group run
    /// one at a time, in order); on a standard queue it names the tenant
    /// for SQS's fair queues. Jobs see it as `DRAINERD_MESSAGE_GROUP_ID`.
    pub group: Option<String>,
    /// `MessageDeduplicationId` (FIFO): a job sent twice with the same id
    /// within five minutes is queued once. Without it, a FIFO queue needs
    /// content-based deduplication.
    pub dedup_id: Option<String>,
}

impl Job {
    pub fn new(body: impl Into<String>) -> Job {
        Job {
            body: body.into(),
            ..Job::default()
        }
    }
    pub fn attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Job {
        self.attributes.push((name.into(), value.into()));
        self
    }
    pub fn group(mut self, group: impl Into<String>) -> Job {
        self.group = Some(group.into());
        self
    }
    pub fn dedup_id(mut self, id: impl Into<String>) -> Job {
        self.dedup_id = Some(id.into());
        self
    }
}

/// SQS allows 10 message attributes; one is the job id.
pub const MAX_ATTRIBUTES: usize = 9;

/// Checks a job's attributes against SQS's rules before sending.
///
/// # Errors
/// Too many attributes, an empty value, a reserved or malformed name.
pub fn validate(job: &Job) -> Result<(), String> {
    if job.body.is_empty() {
        return Err("the body is empty (SQS refuses empty messages)".into());
    }
    if job.attributes.len() > MAX_ATTRIBUTES {
        return Err(format!(
            "{} attributes; SQS allows {MAX_ATTRIBUTES} besides the job id",
            job.attributes.len()
        ));
    }
    for (k, v) in &job.attributes {
        let lower = k.to_ascii_lowercase();
        if k.is_empty() || k.len() > 256 {
            return Err(format!("attribute name {k:?}: 1 to 256 characters"));
        }
        if lower == JOB_ID_ATTRIBUTE || lower.starts_with("aws.") || lower.starts_with("amazon.") {
            return Err(format!("attribute name {k:?} is reserved"));
        }
        if !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            || k.starts_with('.')
            || k.ends_with('.')
            || k.contains("..")
        {
            return Err(format!(
                "attribute name {k:?}: use letters, digits, '_', '-' and '.'"
            ));
        }
        if v.is_empty() {
            return Err(format!("attribute {k:?} has an empty value"));
        }
    }
    Ok(())
}

/// Checks a job's group and deduplication id against the queue's kind.
///
/// # Errors
/// A FIFO queue without a group; a deduplication id on a standard queue.
pub fn validate_for(job: &Job, fifo: bool) -> Result<(), String> {
    match (fifo, &job.group, &job.dedup_id) {
        (true, None, _) => Err(
            "a FIFO queue needs a message group for every job (--group GROUP, or \"group\" in a JSON line)".into(),
        ),
        (false, _, Some(_)) => Err("a deduplication id needs a FIFO queue (.fifo)".into()),
        _ => Ok(()),
    }
}
