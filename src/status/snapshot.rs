//! Everything the page, `/status.json` and `/metrics` show, as one
//! [`Snapshot`] built from the counters, the drain's occupancy, the cached
//! figures and who this instance is.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::board::Figures;
use super::counters::{Api, Counters, RecentJob};
use crate::aws::autoscaling::{Group, Member};
use crate::decide::leave::Billing;
use crate::decide::outcome::JobOutcome;
use crate::drain::occupancy::Load;

/// Who this instance is, as far as it is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceInfo {
    pub instance_id: Option<String>,
    pub instance_type: Option<String>,
    pub availability_zone: Option<String>,
    pub launch_time: Option<SystemTime>,
    pub billing: Option<Billing>,
}

/// Everything the page, `/status.json` and `/metrics` show. Field names
/// are stable (README, "Observing drainerd").
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub version: &'static str,
    pub generated_at: String,
    pub agent: AgentView,
    pub jobs: JobsView,
    pub messages: MessagesView,
    pub queue: QueueView,
    pub instance: InstanceView,
    pub fleet: FleetView,
    pub requests: Vec<RequestCount>,
    pub notices: Vec<NoticeCount>,
    /// The last hour a minute at a time, oldest first, from the first
    /// minute the agent counted; the last entry is the current minute so
    /// far (the page's chart).
    pub last_hour: Vec<MinuteView>,
    /// SQS requests per finished job since start (the cost model's input).
    pub sqs_requests_per_job: Option<f64>,
    pub controls_enabled: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentView {
    /// "starting", "running", "draining".
    pub state: &'static str,
    pub ready: bool,
    pub healthy: bool,
    pub slots: u64,
    pub running: u64,
    /// Seconds since the last job ended; `null` while jobs run.
    pub idle_seconds: Option<u64>,
    pub notice: Option<String>,
    /// Why jobs cannot start, while the agent takes no work for it.
    pub cannot_start: Option<String>,
    pub uptime_seconds: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobsView {
    pub succeeded: u64,
    pub failed: u64,
    pub timed_out: u64,
    /// Stopped by the instance (shutdown, interruption, leaving) and handed
    /// back without spending a receive.
    pub handed_back: u64,
    pub rejected: u64,
    /// The command could not start (the agent's fault); handed back
    /// without spending a receive.
    pub not_started: u64,
    /// Newest first.
    pub recent: Vec<RecentJob>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessagesView {
    pub received: u64,
    pub deleted: u64,
    pub released: u64,
    pub delete_failures: u64,
    pub release_failures: u64,
    pub held: u64,
    pub lease_renewals: u64,
    pub leases_lost: u64,
    /// Hand-backs carried out by sending a copy (the receive budget
    /// untouched); the rest were made visible again.
    pub copied: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueView {
    pub url: String,
    pub visible: Option<u64>,
    pub in_flight: Option<u64>,
    pub delayed: Option<u64>,
    pub dlq_url: Option<String>,
    pub dlq_visible: Option<u64>,
    /// When the figures were read (RFC 3339); `null` until first viewed.
    pub as_of: Option<String>,
    /// How old the figures are, in seconds.
    pub age_seconds: Option<u64>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstanceView {
    pub instance_id: Option<String>,
    pub instance_type: Option<String>,
    pub availability_zone: Option<String>,
    pub launch_time: Option<String>,
    /// "per-second", "hourly", "never".
    pub billing: Option<&'static str>,
    /// The next whole hour since launch (what hourly billing charges by).
    pub next_billing_boundary: Option<String>,
    pub seconds_to_billing_boundary: Option<u64>,
    pub protected: Option<bool>,
    pub lifecycle_state: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FleetView {
    pub group: Option<String>,
    pub desired: Option<u32>,
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub in_service: Option<u32>,
    /// Members on their way out of the group.
    pub leaving: Option<usize>,
    pub members: Vec<Member>,
    /// The fleet logic's verdict: "stay" or "leave".
    pub verdict: Option<&'static str>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestCount {
    /// "sqs", "autoscaling", "metadata".
    pub service: &'static str,
    pub api: &'static str,
    /// "ok" or "error".
    pub result: &'static str,
    pub count: u64,
}

/// One minute of the last hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MinuteView {
    /// The minute's start (RFC 3339, UTC).
    pub minute: String,
    /// Jobs that ended in it; all three `null` where the agent was not
    /// counting (before it started, or its loop was silent).
    pub succeeded: Option<u64>,
    /// Failed, timed out or rejected.
    pub failed: Option<u64>,
    pub handed_back: Option<u64>,
    /// The queue's visible messages as last read in it; `null` where it
    /// was not read (it is read only while someone views the page).
    pub queue_visible: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NoticeCount {
    pub kind: &'static str,
    pub count: u64,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The next whole hour since `launch`, strictly after `now`.
pub fn next_hour_boundary(launch: SystemTime, now: SystemTime) -> SystemTime {
    let age = now.duration_since(launch).unwrap_or_default().as_secs();
    launch + Duration::from_secs((age / 3600 + 1) * 3600)
}

/// What the agent's loop reports about itself, for health and readiness.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    pub started: SystemTime,
    /// The main loop's last tick.
    pub last_tick: Option<SystemTime>,
    /// The queue answered (at start, and the last receive).
    pub queue_ok: bool,
}

/// The main loop ticks every second; this much silence means it is wedged.
pub const WEDGED_AFTER: Duration = Duration::from_secs(15);

/// Builds the snapshot from plain reads of the counters.
#[allow(clippy::too_many_arguments)] // one snapshot, gathered from every source
pub fn snapshot(
    counters: &Counters,
    load: &Load,
    figures: &Figures,
    instance: &InstanceInfo,
    queue_url: &str,
    live: Liveness,
    controls_enabled: bool,
    now: SystemTime,
) -> Snapshot {
    let draining = load.draining;
    let healthy = live
        .last_tick
        .is_some_and(|t| now.duration_since(t).unwrap_or_default() < WEDGED_AFTER);
    let started = live.last_tick.is_some();
    let fv = counters.fleet_verdict();
    let messages = counters.messages();
    let mut requests = Vec::new();
    for api in Api::ALL {
        let (ok, err) = counters.requests(api);
        for (result, count) in [("ok", ok), ("error", err)] {
            requests.push(RequestCount {
                service: "sqs",
                api: api.name(),
                result,
                count,
            });
        }
    }
    for (service, tally) in [
        ("autoscaling", &counters.asg),
        ("metadata", &counters.metadata),
    ] {
        for (api, ok, count) in tally.counts() {
            requests.push(RequestCount {
                service,
                api,
                result: if ok { "ok" } else { "error" },
                count,
            });
        }
    }
    let boundary = instance.launch_time.map(|l| next_hour_boundary(l, now));
    let group = figures.group.as_ref();
    Snapshot {
        version: env!("CARGO_PKG_VERSION"),
        generated_at: rfc3339(now),
        agent: AgentView {
            state: match (started, draining) {
                (false, _) => "starting",
                (true, false) => "running",
                (true, true) => "draining",
            },
            ready: started && live.queue_ok && !draining && !load.cannot_start,
            healthy,
            slots: counters.slots(),
            running: load.running as u64,
            idle_seconds: load
                .idle_since
                .map(|t| now.duration_since(t).unwrap_or_default().as_secs()),
            notice: counters.notice(),
            cannot_start: load
                .cannot_start
                .then(|| counters.start_problem().unwrap_or_default()),
            uptime_seconds: now
                .duration_since(live.started)
                .unwrap_or_default()
                .as_secs(),
        },
        jobs: JobsView {
            succeeded: counters.jobs(JobOutcome::Succeeded),
            failed: counters.jobs(JobOutcome::Failed),
            timed_out: counters.jobs(JobOutcome::TimedOut),
            handed_back: counters.jobs(JobOutcome::HandedBack),
            rejected: counters.jobs(JobOutcome::Rejected),
            not_started: counters.jobs(JobOutcome::NotStarted),
            recent: counters.recent_jobs(),
        },
        messages: MessagesView {
            received: messages.received,
            deleted: messages.deleted,
            released: messages.released,
            delete_failures: messages.delete_failures,
            release_failures: messages.release_failures,
            held: load.held as u64,
            lease_renewals: messages.lease_renewals,
            leases_lost: messages.leases_lost,
            copied: messages.copied,
        },
        queue: QueueView {
            url: queue_url.to_string(),
            visible: figures.queue.as_ref().map(|d| d.visible),
            in_flight: figures.queue.as_ref().map(|d| d.in_flight),
            delayed: figures.queue.as_ref().map(|d| d.delayed),
            dlq_url: figures.dlq_url.clone(),
            dlq_visible: figures.dlq.as_ref().map(|d| d.visible),
            as_of: figures.fetched_at.map(rfc3339),
            age_seconds: figures
                .fetched_at
                .map(|t| now.duration_since(t).unwrap_or_default().as_secs()),
            errors: figures.errors.clone(),
        },
        instance: InstanceView {
            instance_id: instance.instance_id.clone(),
            instance_type: instance.instance_type.clone(),
            availability_zone: instance.availability_zone.clone(),
            launch_time: instance.launch_time.map(rfc3339),
            billing: instance.billing.map(|b| match b {
                Billing::PerSecond => "per-second",
                Billing::Hourly => "hourly",
                Billing::Never => "never",
            }),
            next_billing_boundary: boundary.map(rfc3339),
            seconds_to_billing_boundary: boundary
                .map(|b| b.duration_since(now).unwrap_or_default().as_secs()),
            protected: fv.protected,
            lifecycle_state: counters.lifecycle_state(),
        },
        fleet: FleetView {
            group: group.map(|g| g.name.clone()),
            desired: group.map(|g| g.desired),
            min: group.map(|g| g.min),
            max: group.map(|g| g.max),
            in_service: group.map(|g| g.size().in_service),
            leaving: group.map(Group::leaving),
            members: group.map(|g| g.members.clone()).unwrap_or_default(),
            verdict: fv.verdict,
            reason: fv.reason,
        },
        requests,
        notices: counters
            .notices
            .counts()
            .into_iter()
            .map(|(kind, _, count)| NoticeCount { kind, count })
            .collect(),
        last_hour: counters
            .history
            .series(now, counters.chart_totals())
            .into_iter()
            .map(|m| MinuteView {
                minute: rfc3339(m.start),
                succeeded: m.jobs.map(|j| j.succeeded),
                failed: m.jobs.map(|j| j.failed),
                handed_back: m.jobs.map(|j| j.handed_back),
                queue_visible: m.queue_visible,
            })
            .collect(),
        sqs_requests_per_job: counters.requests_per_job(),
        controls_enabled,
    }
}

/// What a live agent with no figures yet shows now (for tests).
#[cfg(test)]
pub(crate) fn snapshot_now(
    counters: &Counters,
    queue_url: &str,
    controls_enabled: bool,
) -> Snapshot {
    let now = SystemTime::now();
    let live = Liveness {
        started: now,
        last_tick: Some(now),
        queue_ok: true,
    };
    let (figures, instance) = (Figures::default(), InstanceInfo::default());
    snapshot(
        counters,
        &Load::default(),
        &figures,
        &instance,
        queue_url,
        live,
        controls_enabled,
        now,
    )
}

#[cfg(test)]
mod tests;
