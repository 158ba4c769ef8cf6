//! What one job costs: a pure function of the workload, the fleet and the
//! prices, split into components so the dominant one is visible.
//!
//! This module owns the cost formula (README, "What a job costs") and its
//! default prices. It never calls AWS or reads a clock: `drainerd cost`
//! parses flags into [`Inputs`] and prints [`estimate`]'s answer.
//!
//! The request pattern is drainerd's own: a producer sends with
//! `SendMessageBatch` (10 per call, at most [`SEND_BATCH_BYTES`] a call),
//! the agent receives `min(10, concurrency)` per `ReceiveMessage`, deletes
//! in batches, renews leases every heartbeat interval in batches shared by
//! the jobs running on the box, and an idle box long-polls every
//! `wait_time`. SQS bills each 64 KiB chunk of a request's payload as one
//! request.

use std::time::Duration;

/// SQS bills each 64 KiB chunk of a call's payload as one request.
pub const CHUNK_BYTES: u64 = 64 * 1024;
/// At most 10 entries per SQS batch call.
pub const MAX_BATCH: u32 = 10;
/// The client's cap on one SendMessageBatch's total payload: 256 KiB, the
/// limit of queues created before SQS raised it to 1 MiB, so one client
/// works with every queue.
pub const SEND_BATCH_BYTES: u64 = 256 * 1024;

/// When prices below were read (AWS price pages, us-east-1).
pub const PRICES_AS_OF: &str = "2025-06";
/// SQS standard queue, per million requests (first 1 M/month free, not
/// counted). FIFO: 0.50.
pub const DEFAULT_SQS_PER_MILLION: f64 = 0.40;
/// DynamoDB on-demand, per million write request units (1 WRU writes up to
/// 1 KB; price since the 2024-11 reduction).
pub const DEFAULT_DYNAMODB_WRITE_PER_MILLION: f64 = 0.625;
/// EC2 ↔ SQS data transfer in one region is free. Through a NAT gateway
/// it is $0.045/GB processed; cross-region or internet, $0.02–0.09/GB.
pub const DEFAULT_TRANSFER_PER_GB: f64 = 0.0;
/// On-Demand t3.medium (Linux), per hour.
pub const DEFAULT_INSTANCE_PER_HOUR: f64 = 0.0416;

/// How EC2 bills the instance (fleet.billing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Billing {
    /// Per second with a 60 s minimum (Linux On-Demand and Spot).
    PerSecond,
    /// Whole hours (SUSE, some marketplace images).
    Hourly,
}

/// Everything the estimate depends on, in plain values.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    /// Message body size in bytes.
    pub payload_bytes: u64,
    /// Average job run time.
    pub run_time: Duration,
    /// Jobs running at once on one box (job.concurrency).
    pub jobs_per_box: u32,
    /// Instance price per hour, dollars.
    pub instance_per_hour: f64,
    pub billing: Billing,
    /// Average life of one instance (for the billing granularity: the
    /// 60 s minimum, or the last started hour).
    pub instance_lifetime: Duration,
    /// Share of the paid box time that job slots are busy (0 < u ≤ 1).
    pub utilization: f64,
    /// queue.heartbeat_interval: a running job's lease is renewed this often.
    pub heartbeat_interval: Duration,
    /// queue.wait_time: an idle box long-polls this often.
    pub wait_time: Duration,
    /// Messages per SendMessageBatch the producer sends (1 = `enqueue`
    /// one at a time, 10 = `enqueue_many` / `--from-file`).
    pub send_batch: u32,
    /// Job-state tracking on: three DynamoDB writes per job (Queued,
    /// Running, the outcome), each 1 WRU (an item under 1 KB).
    pub tracking: bool,
    /// Measured SQS requests per job (agent side: receive, delete,
    /// heartbeats, idle polls) from a real run; replaces the modelled agent
    /// requests when set.
    pub measured_agent_requests: Option<f64>,
    pub sqs_per_million: f64,
    pub dynamodb_write_per_million: f64,
    pub transfer_per_gb: f64,
}

impl Default for Inputs {
    fn default() -> Self {
        Inputs {
            payload_bytes: 1024,
            run_time: Duration::from_secs(1),
            jobs_per_box: 4,
            instance_per_hour: DEFAULT_INSTANCE_PER_HOUR,
            billing: Billing::PerSecond,
            instance_lifetime: Duration::from_secs(3600),
            utilization: 0.8,
            heartbeat_interval: Duration::from_secs(20),
            wait_time: Duration::from_secs(20),
            send_batch: MAX_BATCH,
            tracking: false,
            measured_agent_requests: None,
            sqs_per_million: DEFAULT_SQS_PER_MILLION,
            dynamodb_write_per_million: DEFAULT_DYNAMODB_WRITE_PER_MILLION,
            transfer_per_gb: DEFAULT_TRANSFER_PER_GB,
        }
    }
}

/// Billed SQS requests per job, by call.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Requests {
    pub send: f64,
    pub receive: f64,
    pub delete: f64,
    pub heartbeat: f64,
    /// Empty long polls while the box is idle, per job.
    pub idle_receive: f64,
    /// Agent-side requests per job measured in a real run (replaces
    /// receive, delete, heartbeat and idle polls when given).
    pub measured: f64,
}

impl Requests {
    pub fn total(&self) -> f64 {
        self.send + self.receive + self.delete + self.heartbeat + self.idle_receive + self.measured
    }
    /// The agent's share (everything but the producer's send).
    pub fn agent(&self) -> f64 {
        self.total() - self.send
    }
}

/// Dollars per job, by component.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub requests: Requests,
    /// Lease renewals one job needs (before batching across jobs).
    pub renewals_per_job: u64,
    /// DynamoDB write request units per job.
    pub tracking_writes: f64,
    pub compute: f64,
    pub sqs: f64,
    pub tracking: f64,
    pub transfer: f64,
}

impl Estimate {
    pub fn per_job(&self) -> f64 {
        self.compute + self.sqs + self.tracking + self.transfer
    }
    pub fn per_million(&self) -> f64 {
        self.per_job() * 1e6
    }
}

/// Why inputs make no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CostError {
    #[error("{0} must be above 0")]
    NotPositive(&'static str),
    #[error("utilization must be in (0, 1], got {0}")]
    Utilization(f64),
    #[error("{0} must not be negative")]
    Negative(&'static str),
}

/// Billed requests for a call carrying `bytes` of payload.
pub fn billed_requests(bytes: u64) -> u64 {
    bytes.div_ceil(CHUNK_BYTES).max(1)
}

/// Lease renewals a job of `run_time` needs: one at each whole heartbeat
/// interval before it ends (a job shorter than the interval needs none).
pub fn renewals(run_time: Duration, interval: Duration) -> u64 {
    if interval.is_zero() || run_time <= interval {
        return 0;
    }
    let (r, i) = (run_time.as_nanos(), interval.as_nanos());
    (r.div_ceil(i) - 1) as u64
}

/// Messages in one SendMessageBatch: `want`, fewer if their bodies would
/// pass [`SEND_BATCH_BYTES`] together (always at least one).
pub fn send_group(payload_bytes: u64, want: u32) -> u32 {
    let fit = SEND_BATCH_BYTES
        .checked_div(payload_bytes)
        .unwrap_or(u64::MAX)
        .max(1);
    want.clamp(1, MAX_BATCH)
        .min(fit.min(MAX_BATCH as u64) as u32)
}

/// Average cost per job.
///
/// # Errors
/// Inputs out of range (zero concurrency, utilization outside (0, 1], a
/// negative price).
pub fn estimate(i: &Inputs) -> Result<Estimate, CostError> {
    if i.jobs_per_box == 0 {
        return Err(CostError::NotPositive("jobs per box"));
    }
    if i.instance_lifetime.is_zero() {
        return Err(CostError::NotPositive("instance lifetime"));
    }
    if i.wait_time.is_zero() {
        return Err(CostError::NotPositive("wait time"));
    }
    if !(i.utilization > 0.0 && i.utilization <= 1.0) {
        return Err(CostError::Utilization(i.utilization));
    }
    for (v, name) in [
        (i.instance_per_hour, "instance price"),
        (i.sqs_per_million, "SQS price"),
        (i.dynamodb_write_per_million, "DynamoDB price"),
        (i.transfer_per_gb, "data transfer price"),
    ] {
        if v.is_nan() || v < 0.0 {
            return Err(CostError::Negative(name));
        }
    }
    let c = i.jobs_per_box as f64;
    let run = i.run_time.as_secs_f64();
    let u = i.utilization;

    // Compute: the box's paid seconds per job, stretched by idle time and
    // by the billing granularity over one instance's life.
    let life = i.instance_lifetime.as_secs_f64();
    let billed = match i.billing {
        Billing::PerSecond => life.max(60.0),
        Billing::Hourly => (life / 3600.0).ceil() * 3600.0,
    };
    let box_seconds_per_job = run / (c * u) * (billed / life);
    let compute = i.instance_per_hour / 3600.0 * box_seconds_per_job;

    // SQS requests.
    let g = send_group(i.payload_bytes, i.send_batch);
    let send = billed_requests(g as u64 * i.payload_bytes) as f64 / g as f64;
    let r = i.jobs_per_box.min(MAX_BATCH);
    let receive = billed_requests(r as u64 * i.payload_bytes) as f64 / r as f64;
    let delete = 1.0 / r as f64;
    let renewals_per_job = renewals(i.run_time, i.heartbeat_interval);
    // Best case: the renewals of the jobs on one box share a batch call.
    let heartbeat = renewals_per_job as f64 / r as f64;
    // An idle box polls once per wait_time; its idle seconds per job are
    // the busy box time per job times (1 - u) / u.
    let idle_seconds = run / c * (1.0 - u) / u;
    let idle_receive = idle_seconds / i.wait_time.as_secs_f64();
    let mut requests = Requests {
        send,
        receive,
        delete,
        heartbeat,
        idle_receive,
        measured: 0.0,
    };
    if let Some(m) = i.measured_agent_requests {
        // A real run's agent-side requests replace the modelled ones.
        requests = Requests {
            send,
            measured: m.max(0.0),
            ..Requests::default()
        };
    }
    let sqs = requests.total() * i.sqs_per_million / 1e6;

    let tracking_writes = if i.tracking { 3.0 } else { 0.0 };
    let tracking = tracking_writes * i.dynamodb_write_per_million / 1e6;

    // The body crosses the network twice: producer → SQS, SQS → worker.
    let transfer = 2.0 * i.payload_bytes as f64 / 1e9 * i.transfer_per_gb;

    Ok(Estimate {
        requests,
        renewals_per_job,
        tracking_writes,
        compute,
        sqs,
        tracking,
        transfer,
    })
}

/// A human report: each component, its share, the totals.
pub fn report(i: &Inputs, e: &Estimate) -> String {
    let total = e.per_job();
    let share = |v: f64| if total > 0.0 { v / total * 100.0 } else { 0.0 };
    let r = &e.requests;
    let mut s = String::new();
    s.push_str(&format!(
        "inputs: payload {} B · run time {} · {} jobs per box · ${}/h ({}, instances live {}) · utilization {:.0}% · heartbeat every {}{}\n",
        i.payload_bytes,
        humantime::format_duration(i.run_time),
        i.jobs_per_box,
        i.instance_per_hour,
        match i.billing {
            Billing::PerSecond => "billed per second",
            Billing::Hourly => "billed hourly",
        },
        humantime::format_duration(i.instance_lifetime),
        i.utilization * 100.0,
        humantime::format_duration(i.heartbeat_interval),
        if i.tracking { " · tracking on" } else { "" },
    ));
    s.push_str(&format!(
        "SQS requests per job: {:.4} (send {:.4}, receive {:.4}, delete {:.4}, heartbeat {:.4} from {} renewals, idle polls {:.4}{})\n",
        r.total(), r.send, r.receive, r.delete, r.heartbeat, e.renewals_per_job, r.idle_receive,
        if i.measured_agent_requests.is_some() { format!("; agent side measured: {:.4}", r.measured) } else { String::new() },
    ));
    s.push_str(&format!(
        "{:<14}{:>16}{:>20}{:>8}\n",
        "component", "$ per job", "$ per million jobs", "share"
    ));
    for (name, v) in [
        ("compute", e.compute),
        ("SQS requests", e.sqs),
        ("tracking", e.tracking),
        ("data transfer", e.transfer),
    ] {
        s.push_str(&format!(
            "{name:<14}{v:>16.10}{:>20.4}{:>7.1}%\n",
            v * 1e6,
            share(v)
        ));
    }
    s.push_str(&format!(
        "{:<14}{:>16.10}{:>20.4}\n",
        "total",
        total,
        total * 1e6
    ));
    s.push_str(&format!(
        "prices as of {PRICES_AS_OF} (us-east-1; override with flags): SQS ${}/M requests, DynamoDB ${}/M writes, transfer ${}/GB\n",
        i.sqs_per_million, i.dynamodb_write_per_million, i.transfer_per_gb
    ));
    s
}

#[cfg(test)]
mod tests;
