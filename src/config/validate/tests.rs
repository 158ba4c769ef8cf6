//! Every range is enforced and named; random configurations, valid or
//! not, never make the timing code panic.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::{DURATIONS, NUMBERS};
use crate::config::{Config, ConfigError};
use crate::decide::notice::{self, Event, Maintenance, SpotAction, SpotNotice};
use crate::system::clock::Later;

const MIN: &str = "[queue]\nurl = \"https://sqs.eu-west-1.amazonaws.com/123456789012/jobs\"\n[job]\ncommand = [\"/bin/cat\"]\n";

/// A configuration with `section.field = value`.
fn with(field: &str, value: &str) -> Result<Config, ConfigError> {
    let (sec, key) = field.split_once('.').unwrap();
    let mut table: toml::Table = MIN.parse().unwrap();
    let fragment: toml::Table = format!("{key} = {value}").parse().unwrap();
    table
        .entry(sec)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .unwrap()
        .extend(fragment);
    Config::from_str_with_env(
        &toml::to_string(&table).unwrap(),
        Path::new("/etc/drainerd/drainerd.toml"),
        &BTreeMap::new(),
    )
}

#[test]
fn every_range_is_enforced_naming_the_field_and_the_range() {
    for r in DURATIONS {
        let over = r.max + Duration::from_secs(1);
        let e = with(r.field, &format!("{}", over.as_secs()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(r.field) && e.contains(&format!("{}", super::Dur(r.max))),
            "{e}"
        );
        if !r.min.is_zero() {
            let under = r.min.saturating_sub(Duration::from_millis(500));
            let e = with(r.field, &format!("\"{}ms\"", under.as_millis()))
                .unwrap_err()
                .to_string();
            assert!(e.contains(r.field), "{}: {e}", r.field);
        }
    }
    for r in NUMBERS {
        let e = with(r.field, &format!("{}", r.max + 1.0))
            .unwrap_err()
            .to_string();
        assert!(e.contains(r.field) && e.contains(&r.max.to_string()), "{e}");
        if r.min > 0.0 {
            let e = with(r.field, &format!("{}", r.min - 1.0))
                .unwrap_err()
                .to_string();
            assert!(e.contains(r.field), "{e}");
        }
    }
}

#[test]
fn the_reported_values_are_refused() {
    // issue 21: a zero long poll (a hot loop), a drain timeout that
    // overflowed an instant, a backoff that rounded to nothing.
    for (field, value) in [
        ("queue.wait_time", "\"0s\""),
        ("agent.drain_timeout", "\"9999999999h\""),
        ("job.retry_backoff_max", "\"500ms\""),
        ("fleet.check_interval", "\"9999999999h\""),
        ("metadata.maintenance_lead", "\"9999999999h\""),
    ] {
        let e = with(field, value).unwrap_err().to_string();
        assert!(e.contains(field) && e.contains("set it between"), "{e}");
    }
}

#[test]
fn the_defaults_are_in_range() {
    assert!(Config::from_str_with_env(MIN, Path::new("x"), &BTreeMap::new()).is_ok());
}

/// A duration anywhere from zero to the largest, most of them near the
/// edges that matter (the ranges' ends, overflow).
fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..=2 * 86_400).prop_map(Duration::from_secs),
        (0u64..=400 * 86_400).prop_map(Duration::from_secs),
        (0u64..=u64::MAX).prop_map(Duration::from_secs),
        Just(Duration::MAX),
    ]
}

fn config_with(durations: &[Duration]) -> Config {
    let mut c = Config::from_str_with_env(MIN, Path::new("x"), &BTreeMap::new()).unwrap();
    let d = |i: usize| crate::config::duration::Dur(durations[i % durations.len()]);
    c.queue.wait_time = d(0);
    c.queue.lease = d(1);
    c.queue.heartbeat_interval = d(2);
    c.job.timeout = d(3);
    c.job.kill_grace = d(4);
    c.job.retry_backoff_base = d(5);
    c.job.retry_backoff_max = d(6);
    c.agent.drain_timeout = d(7);
    c.metadata.spot_margin = d(8);
    c.metadata.maintenance_lead = d(9);
    c.fleet.check_interval = d(10);
    c.fleet.idle_timeout = d(11);
    c.fleet.min_lifetime = d(12);
    c.fleet.hourly_window = d(13);
    c.fleet.protection_linger = d(14);
    c.tracking.ttl = d(15);
    c
}

/// Everything the agent computes from configured durations and times it
/// is told (notices, launch time), as the tasks compute it.
fn timing_code(c: &Config, at: Duration) {
    // The clock, anywhere from 1970 to 9999.
    let now = SystemTime::UNIX_EPOCH.later(Duration::from_secs(at.as_secs() % 253_402_300_799));
    let started = tokio::time::Instant::now();
    // A job's deadline, lease and hard stop; its wall-clock deadline.
    let t = crate::drain::runner::job_times(started, now, c);
    let _ = t.hard_stop.duration_since(started);
    // The lease's renewals.
    let since = t.hard_stop.duration_since(started);
    let _ = crate::decide::lease::extension(since, c.queue.lease.0, since);
    let _ = crate::decide::lease::renewal_due(
        since,
        since,
        c.queue.lease.0,
        c.queue.heartbeat_interval.0,
    );
    // A failure's backoff at every receive count.
    for n in [0, 1, 2, 31, u32::MAX] {
        let _ = crate::decide::backoff::retry_backoff(
            n,
            c.job.retry_backoff_base.0,
            c.job.retry_backoff_max.0,
        );
    }
    // The drain deadline at SIGTERM; the fleet's group refresh; the
    // tracking expiry.
    let _ = started.later(c.agent.drain_timeout.0);
    let _ = crate::fleet::membership::group_refresh(c.fleet.check_interval.0);
    let _ = now.later(c.tracking.ttl.0);
    // Notices at any time, and maintenance at any lead.
    let rules = c.notice_rules();
    // The latest time a metadata document can carry (its parsers take
    // RFC 3339 and AWS dates up to year 9999).
    let last = humantime::parse_rfc3339("9999-12-31T23:59:59Z").unwrap();
    let times = [SystemTime::UNIX_EPOCH, now, last];
    for time in times {
        let m = Maintenance {
            id: "e".into(),
            code: "system-reboot".into(),
            description: String::new(),
            not_before: Some(time),
            state: "active".into(),
        };
        let _ = notice::maintenance_due(&m, c.metadata.maintenance_lead.0, now);
        for e in [
            Event::Spot(SpotNotice {
                action: SpotAction::Terminate,
                time,
            }),
            Event::Rebalance(time),
            Event::Lifecycle(None, "Terminated".into()),
            Event::Maintenance(m.clone()),
            Event::MaintenanceDue(m),
        ] {
            if let notice::Reaction::Drain {
                stop_jobs_in,
                kill_in,
                ..
            } = notice::reaction(&e, &rules, now)
            {
                let _ = stop_jobs_in.map(|d| started.later(d));
                let _ = kill_in.map(|d| started.later(d));
            }
        }
        // The leave decision with any launch time.
        let inputs = crate::decide::leave::Inputs {
            now,
            launch_time: time,
            idle_since: Some(time),
            jobs_running: 0,
            messages_in_flight: 0,
            backlog: 0,
            in_service: 2,
            desired: 2,
            min: 0,
            draining: false,
        };
        let _ = crate::decide::leave::decide(&inputs, &c.fleet.leave_rules());
        let _ = crate::status::snapshot::next_hour_boundary(time, now);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random configurations through validation; the valid ones (and, to
    /// show the arithmetic saturates, the invalid ones too) through the
    /// timing code: no panic.
    #[test]
    fn random_configurations_never_panic(
        durations in proptest::collection::vec(any_duration(), 16),
        at in any_duration(),
    ) {
        let c = config_with(&durations);
        let valid = c.validate(Path::new("x")).is_ok();
        timing_code(&c, at);
        if valid {
            for r in DURATIONS {
                prop_assert!((r.get)(&c).is_none_or(|d| d >= r.min && d <= r.max));
            }
        }
    }

    /// Valid configurations are not rare: drawn inside the ranges, they
    /// pass (unless two fields disagree) and run through the timing code.
    #[test]
    fn configurations_inside_the_ranges_validate(
        picks in proptest::collection::vec(0.0f64..=1.0, 32),
        at in any_duration(),
    ) {
        let mut c = config_with(&[Duration::ZERO]);
        for (i, r) in DURATIONS.iter().enumerate() {
            let span = r.max.saturating_sub(r.min).as_secs_f64();
            let d = Duration::from_secs((r.min.as_secs_f64() + span * picks[i]).floor() as u64).max(r.min);
            set_duration(&mut c, r.field, d);
        }
        // The relations between fields, made to hold.
        c.queue.heartbeat_interval.0 = c.queue.heartbeat_interval.0.min(c.queue.lease.0 - Duration::from_secs(1));
        c.job.timeout.0 = c.job.timeout.0.min(Duration::from_secs(6 * 3600));
        c.job.kill_grace.0 = c
            .job
            .kill_grace
            .0
            .min(c.job.timeout.0 - Duration::from_secs(1))
            .min(Duration::from_secs(5 * 3600));
        c.job.retry_backoff_base.0 = c.job.retry_backoff_base.0.min(c.job.retry_backoff_max.0);
        let v = c.validate(Path::new("x"));
        prop_assert!(v.is_ok(), "{:?}", v.err().map(|e| e.to_string()));
        timing_code(&c, at);
    }
}

fn set_duration(c: &mut Config, field: &str, d: Duration) {
    let d = crate::config::duration::Dur(d);
    match field {
        "queue.wait_time" => c.queue.wait_time = d,
        "queue.lease" => c.queue.lease = d,
        "queue.heartbeat_interval" => c.queue.heartbeat_interval = d,
        "queue.start_timeout" => c.queue.start_timeout = d,
        "job.timeout" => c.job.timeout = d,
        "job.kill_grace" => c.job.kill_grace = d,
        "job.retry_backoff_base" => c.job.retry_backoff_base = d,
        "job.retry_backoff_max" => c.job.retry_backoff_max = d,
        "agent.drain_timeout" => c.agent.drain_timeout = d,
        "metadata.poll_interval" => c.metadata.poll_interval = d,
        "metadata.spot_margin" => c.metadata.spot_margin = d,
        "metadata.maintenance_lead" => c.metadata.maintenance_lead = d,
        "fleet.lifecycle_heartbeat_interval" => c.fleet.lifecycle_heartbeat_interval = d,
        "fleet.idle_timeout" => c.fleet.idle_timeout = d,
        "fleet.min_lifetime" => c.fleet.min_lifetime = d,
        "fleet.hourly_window" => c.fleet.hourly_window = d,
        "fleet.protection_linger" => c.fleet.protection_linger = d,
        "fleet.check_interval" => c.fleet.check_interval = d,
        "fleet.poweroff_after" => c.fleet.poweroff_after = Some(d),
        "status.refresh_interval" => c.status.refresh_interval = d,
        "tracking.ttl" => c.tracking.ttl = d,
        other => panic!("a duration field without a setter here: {other}"),
    }
}

#[test]
fn the_configuration_reference_lists_every_range() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
    )
    .unwrap();
    let rows: Vec<String> = DURATIONS
        .iter()
        .map(|r| format!("| `{}` | {} |", r.field, r.text()))
        .chain(
            NUMBERS
                .iter()
                .map(|r| format!("| `{}` | {} |", r.field, r.text())),
        )
        .collect();
    let missing: Vec<&String> = rows.iter().filter(|r| !doc.contains(r.as_str())).collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md, \"Valid ranges\", lacks:\n{}",
        missing
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
