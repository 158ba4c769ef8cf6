//! One message's life on this instance: check it, run its job, decide its
//! fate, hand it to the settler.
//!
//! The outcome contract (README, "The job contract"): exit 0 deletes; any
//! other end hands the message back — with backoff by receive count after a
//! failure, timeout or rejection, at once after a stop by the agent.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::heartbeat::{Lease, Leases};
use super::occupancy::{Hold, Occupancy};
use super::output::LineBudget;
use super::process::{self, Exit, JobSpec};
use super::queue::Received;
use super::settle::Request;
use crate::config::Config;
use crate::decide::outcome::{self, Action, Backoff, JobOutcome};
use crate::status::counters::{Counters, RecentJob};
use crate::system::clock::Later;
use crate::system::privileges::RunAs;
use crate::tracking::{failure_state, job_id_of, JobState, Recorder, Update};

/// What every job task shares.
pub struct JobContext {
    pub queue_url: String,
    pub config: watch::Receiver<Arc<Config>>,
    pub leases: Arc<Leases>,
    pub settle: mpsc::UnboundedSender<Request>,
    pub budget: Arc<LineBudget>,
    pub counters: Arc<Counters>,
    pub occupancy: Arc<Occupancy>,
    /// Job-state tracking (never waited on: `record` only queues).
    pub recorder: Option<Arc<Recorder>>,
    /// SIGKILL no later than this (a spot interruption's deadline).
    pub kill_by: watch::Receiver<Option<Instant>>,
    /// Who jobs run as (`job.user`); `None`: the agent's own user.
    pub run_as: Option<RunAs>,
}

/// The failure backoff the configuration asks for.
pub fn backoff(cfg: &Config) -> Backoff {
    Backoff {
        base: cfg.job.retry_backoff_base.0,
        max: cfg.job.retry_backoff_max.0,
    }
}

/// The tracking update for a finished job.
fn tracked_outcome(
    job_id: &str,
    m: &Received,
    exit: &Exit,
    outcome: JobOutcome,
    duration: Duration,
    max_receives: Option<Option<u32>>,
) -> Update {
    let state = match outcome {
        JobOutcome::Succeeded => JobState::Succeeded,
        JobOutcome::HandedBack | JobOutcome::NotStarted => JobState::HandedBack,
        JobOutcome::Failed | JobOutcome::TimedOut | JobOutcome::Rejected => {
            failure_state(m.receive_count, max_receives)
        }
    };
    let mut u = Update::new(job_id, state, attempt(m));
    u.message_id = Some(m.id.clone());
    u.exit_code = match exit {
        Exit::Code(c) => Some(*c),
        _ => None,
    };
    u.duration = Some(duration);
    u
}

/// The job's attempt for tracking: its deliveries across hand-back copies
/// (each copy starts its own receive count), so a later run never looks
/// older than an earlier one.
fn attempt(m: &Received) -> u32 {
    m.receive_count.saturating_add(m.interruptions)
}

/// When a job started at `started` (`now` on the wall clock) is due:
/// every instant saturates, whatever the configuration holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobTimes {
    /// Stopped for running too long (`job.timeout`).
    pub deadline: Instant,
    /// The deadline on the wall clock (the job's `DRAINERD_DEADLINE`).
    pub deadline_wall: SystemTime,
    /// The message's lease as received.
    pub visible_until: Instant,
    /// Past this the job is certainly over (deadline + kill grace + a
    /// heartbeat's margin).
    pub hard_stop: Instant,
}

/// A job's times from the configuration.
pub fn job_times(started: Instant, now: SystemTime, cfg: &Config) -> JobTimes {
    let timeout = cfg.job.timeout.0;
    let deadline = started.later(timeout);
    JobTimes {
        deadline,
        deadline_wall: now.later(timeout),
        visible_until: started.later(cfg.queue.lease.0),
        hard_stop: deadline
            .later(cfg.job.kill_grace.0)
            .later(cfg.queue.heartbeat_interval.0),
    }
}

/// The environment a job sees on top of the agent's: the job user's
/// `HOME`, `USER` and `LOGNAME` (when jobs run as another user), then
/// `job.env` and `job.secret_env`, the message's attributes, and drainerd's
/// own variables.
pub fn job_env(
    m: &Received,
    job_id: &str,
    queue_url: &str,
    deadline: SystemTime,
    cfg: &Config,
    run_as: Option<&RunAs>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    if let Some(r) = run_as {
        env.push(("HOME".into(), r.home.to_string_lossy().into_owned()));
        env.push(("USER".into(), r.user.clone()));
        env.push(("LOGNAME".into(), r.user.clone()));
    }
    env.extend(cfg.job.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend(
        cfg.job
            .secret_env
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string())),
    );
    for (name, value) in &m.attributes {
        env.push((format!("DRAINERD_ATTR_{name}"), value.clone()));
    }
    // drainerd's own variables last: they win over attributes and job.env.
    env.push(("DRAINERD_JOB_ID".into(), job_id.into()));
    env.push(("DRAINERD_MESSAGE_ID".into(), m.id.clone()));
    env.push(("DRAINERD_RECEIVE_COUNT".into(), m.receive_count.to_string()));
    env.push(("DRAINERD_INTERRUPTIONS".into(), m.interruptions.to_string()));
    if let Some(g) = &m.group {
        env.push(("DRAINERD_MESSAGE_GROUP_ID".into(), g.clone()));
    }
    env.push(("DRAINERD_QUEUE_URL".into(), queue_url.into()));
    env.push((
        "DRAINERD_DEADLINE".into(),
        humantime::format_rfc3339_seconds(deadline).to_string(),
    ));
    env
}

/// Runs one message's job and settles the message. Holds `permit` (the job
/// slot) until the job has ended; `hold` (the message) goes on to the
/// settler with the message.
pub async fn run(
    ctx: Arc<JobContext>,
    key: u64,
    m: Received,
    hold: Hold,
    permit: OwnedSemaphorePermit,
    stop: CancellationToken,
) -> JobOutcome {
    let cfg = ctx.config.borrow().clone();
    let counters = &ctx.counters;
    let running = ctx.occupancy.running();
    let started = Instant::now();
    let message_id: Arc<str> = Arc::from(m.id.as_str());
    let job_id = job_id_of(&m.id, &m.attributes);
    if let Some(t) = &ctx.recorder {
        let mut u = Update::new(&job_id, JobState::Running, attempt(&m));
        u.message_id = Some(m.id.clone());
        t.record(u);
    }

    let exit = if m.body.len() > cfg.queue.max_message_bytes {
        Exit::Rejected(format!(
            "message body is {} bytes, above queue.max_message_bytes {}",
            m.body.len(),
            cfg.queue.max_message_bytes
        ))
    } else {
        let times = job_times(started, SystemTime::now(), &cfg);
        let deadline = times.deadline;
        ctx.leases.insert(
            key,
            Lease {
                message_id: message_id.clone(),
                receipt: m.receipt.clone(),
                received_at: started,
                visible_until: times.visible_until,
                hard_stop: times.hard_stop,
                lost: false,
            },
        );
        let spec = JobSpec {
            argv: cfg.job.command.clone(),
            working_dir: cfg.job.working_dir.clone(),
            run_as: ctx.run_as.clone(),
            env: job_env(
                &m,
                &job_id,
                &ctx.queue_url,
                times.deadline_wall,
                &cfg,
                ctx.run_as.as_ref(),
            ),
            // Shared, not copied (up to 1 MiB per job): a hand-back's copy
            // may need it after the job.
            stdin: m.body.clone(),
            deadline,
            kill_grace: cfg.job.kill_grace.0,
            kill_by: ctx.kill_by.clone(),
            message_id: message_id.clone(),
            line_max: cfg.job.log_line_max,
        };
        counters.start_latency.observe(m.received_at.elapsed());
        let exit = process::run(spec, stop, ctx.budget.clone(), counters.clone()).await;
        match &exit {
            Exit::SpawnFailed(why) => {
                if ctx.occupancy.start_failed() {
                    tracing::error!(error = %why, in_a_row = crate::decide::outcome::START_FAILURES_TO_CLOSE, "jobs cannot start: stopped taking work; messages go back without spending their receives; probing every 30s, and taking work again once the command can start");
                    counters.set_start_problem(Some(why.clone()));
                }
            }
            _ => ctx.occupancy.start_succeeded(),
        }
        if let Some(lease) = ctx.leases.remove(key) {
            if Instant::now() > lease.visible_until && !lease.lost {
                counters.lease_lost();
                tracing::warn!(message_id = %message_id, "the job outlived its message's lease; the message may have been delivered to another worker: possible duplicate");
            }
        }
        exit
    };

    let (action, outcome) = outcome::decide(&exit, m.receive_count, backoff(&cfg));
    let duration = started.elapsed();
    let exit_desc = exit.describe(&cfg.job.timeout.to_string());
    let next = action.describe();
    if outcome == JobOutcome::Succeeded {
        tracing::info!(message_id = %message_id, receive_count = m.receive_count, outcome = outcome.name(), exit = %exit_desc, duration_ms = duration.as_millis() as u64, "job finished");
    } else {
        tracing::warn!(message_id = %message_id, receive_count = m.receive_count, outcome = outcome.name(), exit = %exit_desc, duration_ms = duration.as_millis() as u64, next = %next, "job did not succeed");
    }
    counters.job_finished(
        outcome,
        RecentJob {
            message_id: message_id.to_string(),
            finished_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            duration_seconds: duration.as_secs_f64(),
            outcome: outcome.name(),
            exit: exit_desc,
            receive_count: m.receive_count,
        },
        duration,
    );
    drop(running);
    if let Some(t) = &ctx.recorder {
        t.record(tracked_outcome(
            &job_id,
            &m,
            &exit,
            outcome,
            duration,
            t.max_receives(),
        ));
    }
    // The settler only stops once every job has ended, so this send is
    // taken; were it not, the message would reappear after its lease.
    let request = match action {
        Action::HandBack => Request::hand_back(&m, hold),
        action => Request {
            message_id,
            receipt: m.receipt,
            action,
            hold,
            copy: None,
        },
    };
    let _ = ctx.settle.send(request);
    drop(permit);
    outcome
}
