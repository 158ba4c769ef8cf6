//! `drainerd cost`: flags → [`crate::ops::cost::Inputs`] → the printed estimate.

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::Failure;
use crate::exit;
use crate::ops::cost::{self, Billing, Inputs};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BillingArg {
    PerSecond,
    Hourly,
}

#[derive(Args, Debug)]
pub struct CostArgs {
    /// Message body size, bytes.
    #[arg(long, default_value_t = 1024)]
    pub payload_bytes: u64,
    /// Average job run time (e.g. 500ms, 30s, 2m).
    #[arg(long, default_value = "1s", value_parser = super::parse_duration)]
    pub run_time: Duration,
    /// Jobs running at once per instance (job.concurrency).
    #[arg(long, default_value_t = 4)]
    pub jobs_per_box: u32,
    /// Instance price per hour, dollars (default: t3.medium On-Demand, us-east-1).
    #[arg(long, default_value_t = cost::DEFAULT_INSTANCE_PER_HOUR)]
    pub instance_per_hour: f64,
    #[arg(long, value_enum, default_value = "per-second")]
    pub billing: BillingArg,
    /// Average life of one instance (billing granularity: 60 s minimum, or whole hours).
    #[arg(long, default_value = "1h", value_parser = super::parse_duration)]
    pub instance_lifetime: Duration,
    /// Share of paid instance time the job slots are busy, 0 < u <= 1.
    #[arg(long, default_value_t = 0.8)]
    pub utilization: f64,
    /// queue.heartbeat_interval.
    #[arg(long, default_value = "20s", value_parser = super::parse_duration)]
    pub heartbeat_interval: Duration,
    /// queue.wait_time (idle long-poll length).
    #[arg(long, default_value = "20s", value_parser = super::parse_duration)]
    pub wait_time: Duration,
    /// Jobs per SendMessageBatch on the producer side (1..10; 1 = one enqueue per job).
    #[arg(long, default_value_t = 10)]
    pub send_batch: u32,
    /// Count job-state tracking writes (3 DynamoDB writes per job).
    #[arg(long)]
    pub tracking: bool,
    /// Agent-side SQS requests per job measured in a real run (the
    /// `sqs_requests_per_job` field of drainerd's stop log line); replaces
    /// the modelled receive/delete/heartbeat/idle requests.
    #[arg(long)]
    pub requests_per_job: Option<f64>,
    /// SQS price per million requests.
    #[arg(long, default_value_t = cost::DEFAULT_SQS_PER_MILLION)]
    pub sqs_per_million: f64,
    /// DynamoDB on-demand price per million write request units.
    #[arg(long, default_value_t = cost::DEFAULT_DYNAMODB_WRITE_PER_MILLION)]
    pub dynamodb_write_per_million: f64,
    /// Data transfer price per GB (0 within a region; 0.045 through a NAT gateway).
    #[arg(long, default_value_t = cost::DEFAULT_TRANSFER_PER_GB)]
    pub transfer_per_gb: f64,
}

impl CostArgs {
    pub fn inputs(&self) -> Inputs {
        Inputs {
            payload_bytes: self.payload_bytes,
            run_time: self.run_time,
            jobs_per_box: self.jobs_per_box,
            instance_per_hour: self.instance_per_hour,
            billing: match self.billing {
                BillingArg::PerSecond => Billing::PerSecond,
                BillingArg::Hourly => Billing::Hourly,
            },
            instance_lifetime: self.instance_lifetime,
            utilization: self.utilization,
            heartbeat_interval: self.heartbeat_interval,
            wait_time: self.wait_time,
            send_batch: self.send_batch,
            tracking: self.tracking,
            measured_agent_requests: self.requests_per_job,
            sqs_per_million: self.sqs_per_million,
            dynamodb_write_per_million: self.dynamodb_write_per_million,
            transfer_per_gb: self.transfer_per_gb,
        }
    }
}

/// # Errors
/// Inputs out of range (exit 64).
pub fn run(args: &CostArgs) -> Result<(), Failure> {
    let i = args.inputs();
    let e = cost::estimate(&i).map_err(|e| Failure::new(exit::USAGE, format!("cost: {e}")))?;
    print!("{}", cost::report(&i, &e));
    Ok(())
}
