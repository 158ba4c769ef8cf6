use super::*;
use crate::decide::outcome::JobOutcome;
use crate::status::counters::RecentJob;
use crate::status::snapshot::snapshot_now;
use std::time::Duration;

#[test]
fn exposition_has_escaped_labels_and_cumulative_buckets() {
    let stats = Counters::default();
    let job = RecentJob {
        message_id: "m".into(),
        finished_at: "2026-11-22T10:00:00Z".into(),
        duration_seconds: 0.003,
        outcome: JobOutcome::Succeeded.name(),
        exit: "exit 0".into(),
        receive_count: 1,
    };
    stats.job_finished(JobOutcome::Succeeded, job, Duration::from_millis(3));
    stats.job_seconds.observe(Duration::from_secs(2));
    stats.job_seconds.observe(Duration::from_secs(7200));
    let s = snapshot_now(&stats, "http://q/\"x\"\\y", false);
    let text = render(&s, &stats);
    assert!(text.contains(r#"queue_url="http://q/\"x\"\\y""#), "{text}");
    assert!(text.contains("drainerd_jobs_total{outcome=\"succeeded\"} 1\n"));
    assert!(text.contains("drainerd_job_duration_seconds_bucket{le=\"0.0025\"} 0\n"));
    assert!(text.contains("drainerd_job_duration_seconds_bucket{le=\"0.005\"} 1\n"));
    assert!(text.contains("drainerd_job_duration_seconds_bucket{le=\"2.5\"} 2\n"));
    assert!(text.contains("drainerd_job_duration_seconds_bucket{le=\"3600\"} 2\n"));
    assert!(text.contains("drainerd_job_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert!(text.contains("drainerd_job_duration_seconds_count 3\n"));
    // Queue gauges are absent until figures were read, tracking
    // counters while tracking is off.
    assert!(!text.contains("drainerd_queue_messages{"));
    assert!(!text.contains("drainerd_tracking_updates_total"));
}

#[test]
fn tracking_writes_are_counted_by_result_once_tracking_is_on() {
    let stats = Counters::default();
    let t = std::sync::Arc::new(crate::tracking::RecorderStats::default());
    t.written.store(7, std::sync::atomic::Ordering::Relaxed);
    t.dropped.store(2, std::sync::atomic::Ordering::Relaxed);
    stats.set_tracking(t);
    let text = render(&snapshot_now(&stats, "http://q", false), &stats);
    for line in [
        "drainerd_tracking_updates_total{result=\"written\"} 7\n",
        "drainerd_tracking_updates_total{result=\"stale\"} 0\n",
        "drainerd_tracking_updates_total{result=\"failed\"} 0\n",
        "drainerd_tracking_updates_total{result=\"dropped\"} 2\n",
    ] {
        assert!(text.contains(line), "{line}{text}");
    }
}
