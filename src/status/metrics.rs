//! `/metrics`: the snapshot and the histograms in Prometheus' text
//! exposition format (version 0.0.4). Names follow Prometheus conventions:
//! `drainerd_` prefix, units in names, `_total` for counters.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::counters::{Counters, Histogram, BUCKETS};
use super::Snapshot;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value (backslash, double quote, line feed).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", esc(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
    fn one(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.head(name, kind, help);
        self.sample(name, &[], value);
    }
    fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.head(name, "histogram", help);
        let (counts, sum) = h.read();
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(&counts) {
            cumulative += n;
            self.sample(
                &format!("{name}_bucket"),
                &[("le", &bound.to_string())],
                cumulative as f64,
            );
        }
        cumulative += counts.last().copied().unwrap_or(0);
        self.sample(
            &format!("{name}_bucket"),
            &[("le", "+Inf")],
            cumulative as f64,
        );
        self.sample(&format!("{name}_sum"), &[], sum);
        self.sample(&format!("{name}_count"), &[], cumulative as f64);
    }
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Renders every metric.
pub fn render(s: &Snapshot, stats: &Counters) -> String {
    let mut o = Out(String::with_capacity(8192));
    o.head(
        "drainerd_info",
        "gauge",
        "drainerd's version and this instance (always 1).",
    );
    o.sample(
        "drainerd_info",
        &[
            ("version", s.version),
            (
                "instance_id",
                s.instance.instance_id.as_deref().unwrap_or(""),
            ),
            (
                "instance_type",
                s.instance.instance_type.as_deref().unwrap_or(""),
            ),
            ("queue_url", &s.queue.url),
        ],
        1.0,
    );

    o.head(
        "drainerd_jobs_total",
        "counter",
        "Jobs finished, by outcome.",
    );
    for (outcome, n) in [
        ("succeeded", s.jobs.succeeded),
        ("failed", s.jobs.failed),
        ("timed_out", s.jobs.timed_out),
        ("handed_back", s.jobs.handed_back),
        ("rejected", s.jobs.rejected),
        ("not_started", s.jobs.not_started),
    ] {
        o.sample("drainerd_jobs_total", &[("outcome", outcome)], n as f64);
    }
    o.head(
        "drainerd_requests_total",
        "counter",
        "Requests to SQS, Auto Scaling and instance metadata, by API and result.",
    );
    for r in &s.requests {
        o.sample(
            "drainerd_requests_total",
            &[("service", r.service), ("api", r.api), ("result", r.result)],
            r.count as f64,
        );
    }
    let m = &s.messages;
    o.one(
        "drainerd_messages_received_total",
        "counter",
        "Messages received from SQS.",
        m.received as f64,
    );
    o.one(
        "drainerd_messages_deleted_total",
        "counter",
        "Messages deleted after their job succeeded.",
        m.deleted as f64,
    );
    o.one(
        "drainerd_messages_handed_back_total",
        "counter",
        "Messages made visible again (failures with backoff, hand-backs that could not be copies).",
        m.released as f64,
    );
    o.one(
        "drainerd_messages_copied_total",
        "counter",
        "Hand-backs for another worker carried out by a copy (interruptions and start failures; the job's receive budget untouched).",
        m.copied as f64,
    );
    o.head(
        "drainerd_settle_failures_total",
        "counter",
        "Deletes or hand-backs that failed for good (SQS redelivers those messages after their lease).",
    );
    o.sample(
        "drainerd_settle_failures_total",
        &[("action", "delete")],
        m.delete_failures as f64,
    );
    o.sample(
        "drainerd_settle_failures_total",
        &[("action", "hand_back")],
        m.release_failures as f64,
    );
    o.one(
        "drainerd_lease_renewals_total",
        "counter",
        "Visibility extensions sent for running jobs.",
        m.lease_renewals as f64,
    );
    o.one(
        "drainerd_leases_lost_total",
        "counter",
        "Jobs that outlived their message's lease (possible duplicates).",
        m.leases_lost as f64,
    );
    o.head(
        "drainerd_notices_total",
        "counter",
        "Instance metadata notices seen, by kind.",
    );
    let mut notices: BTreeMap<&str, u64> = ["spot", "rebalance", "lifecycle", "maintenance"]
        .iter()
        .map(|k| (*k, 0))
        .collect();
    for n in &s.notices {
        *notices.entry(n.kind).or_default() += n.count;
    }
    for (kind, n) in notices {
        o.sample("drainerd_notices_total", &[("kind", kind)], n as f64);
    }

    o.head(
        "drainerd_status_refusals_total",
        "counter",
        "Status page requests refused, by reason (host, origin, token, rate, body).",
    );
    let mut refusals: BTreeMap<&str, u64> = ["host", "origin", "token", "rate", "body"]
        .iter()
        .map(|k| (*k, 0))
        .collect();
    for (reason, _, n) in stats.page_refusals.counts() {
        *refusals.entry(reason).or_default() += n;
    }
    for (reason, n) in refusals {
        o.sample(
            "drainerd_status_refusals_total",
            &[("reason", reason)],
            n as f64,
        );
    }

    o.one(
        "drainerd_jobs_running",
        "gauge",
        "Jobs running now.",
        s.agent.running as f64,
    );
    o.one(
        "drainerd_job_slots",
        "gauge",
        "Job slots (job.concurrency).",
        s.agent.slots as f64,
    );
    o.one(
        "drainerd_messages_held",
        "gauge",
        "Messages received and not yet settled.",
        m.held as f64,
    );
    o.one(
        "drainerd_draining",
        "gauge",
        "1 while intake is closed (shutdown, notice, leaving).",
        flag(s.agent.state == "draining"),
    );
    o.one(
        "drainerd_ready",
        "gauge",
        "1 when the queue answers and intake is open.",
        flag(s.agent.ready),
    );
    if let Some(idle) = s.agent.idle_seconds {
        o.one(
            "drainerd_idle_seconds",
            "gauge",
            "Seconds since the last job ended (absent while jobs run).",
            idle as f64,
        );
    }
    o.head(
        "drainerd_queue_messages",
        "gauge",
        "Approximate queue depths as last read (absent until first viewed).",
    );
    for (queue, state, v) in [
        ("main", "visible", s.queue.visible),
        ("main", "in_flight", s.queue.in_flight),
        ("main", "delayed", s.queue.delayed),
        ("dead_letter", "visible", s.queue.dlq_visible),
    ] {
        if let Some(v) = v {
            o.sample(
                "drainerd_queue_messages",
                &[("queue", queue), ("state", state)],
                v as f64,
            );
        }
    }
    if let Some(secs) = s.instance.seconds_to_billing_boundary {
        o.one(
            "drainerd_billing_boundary_seconds",
            "gauge",
            "Seconds to the next whole hour since launch (the hourly billing boundary).",
            secs as f64,
        );
    }
    if let Some(p) = s.instance.protected {
        o.one(
            "drainerd_scale_in_protected",
            "gauge",
            "1 while this instance is protected from scale-in.",
            flag(p),
        );
    }
    if let (Some(d), Some(min), Some(max)) = (s.fleet.desired, s.fleet.min, s.fleet.max) {
        o.head(
            "drainerd_group_capacity",
            "gauge",
            "The Auto Scaling group's capacity settings.",
        );
        o.sample(
            "drainerd_group_capacity",
            &[("kind", "desired")],
            f64::from(d),
        );
        o.sample(
            "drainerd_group_capacity",
            &[("kind", "min")],
            f64::from(min),
        );
        o.sample(
            "drainerd_group_capacity",
            &[("kind", "max")],
            f64::from(max),
        );
        let mut states: BTreeMap<&str, u64> = BTreeMap::new();
        for member in &s.fleet.members {
            *states.entry(member.lifecycle_state.as_str()).or_default() += 1;
        }
        o.head(
            "drainerd_group_instances",
            "gauge",
            "Instances in the group, by lifecycle state.",
        );
        for (state, n) in states {
            o.sample(
                "drainerd_group_instances",
                &[("lifecycle_state", state)],
                n as f64,
            );
        }
    }
    if let Some(r) = s.sqs_requests_per_job {
        o.one(
            "drainerd_sqs_requests_per_job",
            "gauge",
            "SQS requests per finished job since start (input to `drainerd cost`).",
            r,
        );
    }
    if let Some(t) = stats.tracking() {
        o.head(
            "drainerd_tracking_updates_total",
            "counter",
            "Job-state tracking updates, by result: written, stale (a newer or final state was stored), failed (the write failed), dropped (the writer was behind).",
        );
        for (result, n) in [
            ("written", &t.written),
            ("stale", &t.stale),
            ("failed", &t.failed),
            ("dropped", &t.dropped),
        ] {
            o.sample(
                "drainerd_tracking_updates_total",
                &[("result", result)],
                n.load(std::sync::atomic::Ordering::Relaxed) as f64,
            );
        }
    }
    o.histogram(
        "drainerd_job_duration_seconds",
        "How long jobs ran.",
        &stats.job_seconds,
    );
    o.histogram(
        "drainerd_receive_to_start_seconds",
        "From ReceiveMessage's answer to the job's start.",
        &stats.start_latency,
    );
    o.0
}

#[cfg(test)]
mod tests;
