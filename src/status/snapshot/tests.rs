use std::time::UNIX_EPOCH;

use super::*;
use crate::aws::sqs::Depths;
use crate::drain::occupancy::Occupancy;

#[test]
fn billing_boundary_is_the_next_whole_hour_since_launch() {
    let launch = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let at = |s| launch + Duration::from_secs(s);
    assert_eq!(next_hour_boundary(launch, at(0)), at(3600));
    assert_eq!(next_hour_boundary(launch, at(3599)), at(3600));
    assert_eq!(next_hour_boundary(launch, at(3600)), at(7200));
    // A clock behind the launch time: the first hour.
    assert_eq!(
        next_hour_boundary(launch, launch - Duration::from_secs(5)),
        at(3600)
    );
}

#[test]
fn snapshot_reflects_counters_and_figures() {
    let stats = Counters::default();
    let occupancy = Occupancy::new();
    stats.set_slots(4);
    let job = occupancy.running();
    stats.job_finished(JobOutcome::Succeeded, recent(), Duration::from_secs(1));
    drop(job);
    stats.request(Api::ReceiveMessage, true);
    stats.request(Api::DeleteMessageBatch, true);
    stats.asg.add("SetInstanceProtection", false);
    let figures = Figures {
        queue: Some(Depths {
            visible: 7,
            in_flight: 2,
            delayed: 1,
            dead_letter_arn: None,
        }),
        ..Figures::default()
    };
    let now = SystemTime::now();
    let live = Liveness {
        started: now,
        last_tick: Some(now),
        queue_ok: true,
    };
    let s = snapshot(
        &stats,
        &occupancy.now(),
        &figures,
        &InstanceInfo::default(),
        "q",
        live,
        false,
        now,
    );
    assert_eq!(s.agent.state, "running");
    assert!(s.agent.ready && s.agent.healthy);
    assert_eq!((s.agent.slots, s.agent.running), (4, 0));
    assert_eq!(s.jobs.succeeded, 1);
    assert_eq!(s.queue.visible, Some(7));
    assert_eq!(s.queue.dlq_visible, None);
    assert_eq!(s.sqs_requests_per_job, Some(2.0));
    assert!(s.requests.iter().any(|r| r.service == "autoscaling"
        && r.api == "SetInstanceProtection"
        && r.result == "error"
        && r.count == 1));
    let wedged = Liveness {
        last_tick: Some(now - WEDGED_AFTER),
        ..live
    };
    let s = snapshot(
        &stats,
        &occupancy.now(),
        &figures,
        &InstanceInfo::default(),
        "q",
        wedged,
        false,
        now,
    );
    assert!(!s.agent.healthy);
}

fn recent() -> RecentJob {
    RecentJob {
        message_id: "m".into(),
        finished_at: "2026-11-22T10:00:00Z".into(),
        duration_seconds: 1.0,
        outcome: JobOutcome::Succeeded.name(),
        exit: "exit 0".into(),
        receive_count: 1,
    }
}

#[test]
fn the_last_hour_counts_jobs_from_the_first_tick() {
    let stats = Counters::default();
    assert!(snapshot_now(&stats, "https://q", false)
        .last_hour
        .is_empty());
    stats.tick();
    stats.job_finished(JobOutcome::Succeeded, recent(), Duration::from_secs(1));
    stats.job_finished(JobOutcome::TimedOut, recent(), Duration::from_secs(1));
    stats.job_finished(JobOutcome::HandedBack, recent(), Duration::from_secs(1));
    let s = snapshot_now(&stats, "https://q", false);
    // One minute, or two if the clock has just passed a minute's end.
    assert!((1..=2).contains(&s.last_hour.len()), "{:?}", s.last_hour);
    let sum = |f: fn(&MinuteView) -> Option<u64>| s.last_hour.iter().filter_map(f).sum::<u64>();
    assert_eq!(sum(|m| m.succeeded), 1);
    assert_eq!(sum(|m| m.failed), 1, "timed out counts as failed");
    assert_eq!(sum(|m| m.handed_back), 1);
    assert!(s.last_hour.iter().all(|m| m.queue_visible.is_none()));
    let json = serde_json::to_value(&s).unwrap();
    let last = &json["last_hour"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(last["minute"].as_str().unwrap().ends_with(":00Z"), "{last}");
    assert!(last["queue_visible"].is_null());
}
