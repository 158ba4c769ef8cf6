//! The cost model against cases worked by hand, and its monotonicity.

use super::*;
use proptest::prelude::*;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12_f64.max(b.abs() * 1e-9)
}

#[test]
fn chunks_of_64_kib_bill_as_one_request_each() {
    assert_eq!(billed_requests(0), 1);
    assert_eq!(billed_requests(1), 1);
    assert_eq!(billed_requests(65_536), 1);
    assert_eq!(billed_requests(65_537), 2);
    assert_eq!(billed_requests(256 * 1024), 4);
    assert_eq!(billed_requests(1024 * 1024), 16);
}

#[test]
fn renewals_happen_at_each_whole_interval_before_the_end() {
    let s = Duration::from_secs;
    assert_eq!(renewals(s(10), s(20)), 0);
    assert_eq!(renewals(s(20), s(20)), 0);
    assert_eq!(renewals(s(21), s(20)), 1); // at 20 s
    assert_eq!(renewals(s(60), s(20)), 2); // at 20, 40
    assert_eq!(renewals(s(65), s(20)), 3); // at 20, 40, 60
    assert_eq!(renewals(s(3600), s(20)), 179);
}

#[test]
fn send_batches_stay_under_256_kib() {
    assert_eq!(send_group(1024, 10), 10);
    assert_eq!(send_group(102_400, 10), 2); // 2 × 100 KiB fit, 3 do not
    assert_eq!(send_group(300_000, 10), 1); // alone even above the cap
    assert_eq!(send_group(0, 10), 10);
    assert_eq!(send_group(1024, 1), 1);
}

/// 1 KiB jobs of 1 s, 4 per box, $0.0416/h, 80% busy, hour-long instances.
#[test]
fn small_fast_jobs_by_hand() {
    let e = estimate(&Inputs::default()).unwrap();
    // compute: 0.0416 / 3600 × 1 s / (4 × 0.8)
    assert!(close(e.compute, 0.0416 / 3600.0 / 3.2), "{}", e.compute);
    let r = e.requests;
    assert!(close(r.send, 0.1)); // 10 KiB per batch of 10: one request
    assert!(close(r.receive, 0.25)); // 4 per receive, 4 KiB
    assert!(close(r.delete, 0.25));
    assert_eq!(e.renewals_per_job, 0);
    assert!(close(r.heartbeat, 0.0));
    // idle box time per job: 1 s / 4 × 0.2 / 0.8 = 0.0625 s; one poll per 20 s
    assert!(close(r.idle_receive, 0.003_125));
    assert!(close(e.sqs, 0.603_125 * 0.40 / 1e6));
    assert_eq!(e.tracking, 0.0);
    assert_eq!(e.transfer, 0.0);
    assert!(close(
        e.per_million(),
        (0.0416 / 3600.0 / 3.2 + 0.603_125 * 0.4e-6) * 1e6
    ));
}

/// 100 KiB bodies, 65 s jobs, 8 per box: chunking and heartbeats.
#[test]
fn large_slow_jobs_by_hand() {
    let i = Inputs {
        payload_bytes: 102_400,
        run_time: Duration::from_secs(65),
        jobs_per_box: 8,
        utilization: 1.0,
        tracking: true,
        transfer_per_gb: 0.045,
        ..Inputs::default()
    };
    let e = estimate(&i).unwrap();
    let r = e.requests;
    // send: 2 per batch (256 KiB cap), 200 KiB = 4 chunks → 2 per job
    assert!(close(r.send, 2.0), "{}", r.send);
    // receive: 8 × 100 KiB = 800 KiB = 12.5 → 13 chunks / 8 jobs
    assert!(close(r.receive, 13.0 / 8.0), "{}", r.receive);
    assert!(close(r.delete, 0.125));
    // renewals at 20, 40, 60 s; 8 jobs share each batch call
    assert_eq!(e.renewals_per_job, 3);
    assert!(close(r.heartbeat, 3.0 / 8.0));
    assert!(close(r.idle_receive, 0.0)); // never idle
    assert!(close(r.total(), 2.0 + 1.625 + 0.125 + 0.375));
    assert!(close(e.compute, 0.0416 / 3600.0 * 65.0 / 8.0));
    assert!(close(e.tracking, 3.0 * 0.625 / 1e6));
    assert!(close(e.transfer, 2.0 * 102_400.0 / 1e9 * 0.045));
}

#[test]
fn hourly_billing_pays_the_started_hour() {
    let base = Inputs {
        instance_lifetime: Duration::from_secs(90 * 60),
        ..Inputs::default()
    };
    let per_second = estimate(&base).unwrap();
    let hourly = estimate(&Inputs {
        billing: Billing::Hourly,
        ..base.clone()
    })
    .unwrap();
    // 90 minutes billed as 120: compute × 4/3
    assert!(close(hourly.compute, per_second.compute * 4.0 / 3.0));
    // Per second has a 60 s minimum: a 30 s instance pays for 60.
    let short = estimate(&Inputs {
        instance_lifetime: Duration::from_secs(30),
        ..Inputs::default()
    })
    .unwrap();
    let hour = estimate(&Inputs::default()).unwrap();
    assert!(close(short.compute, hour.compute * 2.0));
}

#[test]
fn measured_requests_replace_the_agent_side_model() {
    let i = Inputs {
        measured_agent_requests: Some(0.252),
        ..Inputs::default()
    };
    let e = estimate(&i).unwrap();
    assert!(close(e.requests.total(), 0.1 + 0.252));
    assert!(close(e.requests.agent(), 0.252));
}

#[test]
fn nonsense_inputs_are_refused() {
    let bad = |i: Inputs| estimate(&i).unwrap_err();
    assert_eq!(
        bad(Inputs {
            jobs_per_box: 0,
            ..Inputs::default()
        }),
        CostError::NotPositive("jobs per box")
    );
    assert_eq!(
        bad(Inputs {
            utilization: 0.0,
            ..Inputs::default()
        }),
        CostError::Utilization(0.0)
    );
    assert_eq!(
        bad(Inputs {
            utilization: 1.5,
            ..Inputs::default()
        }),
        CostError::Utilization(1.5)
    );
    assert_eq!(
        bad(Inputs {
            instance_per_hour: -1.0,
            ..Inputs::default()
        }),
        CostError::Negative("instance price")
    );
}

#[test]
fn the_report_names_every_component() {
    let i = Inputs::default();
    let text = report(&i, &estimate(&i).unwrap());
    for want in [
        "compute",
        "SQS requests",
        "tracking",
        "data transfer",
        "total",
        PRICES_AS_OF,
    ] {
        assert!(text.contains(want), "{want} missing from\n{text}");
    }
}

fn inputs() -> impl Strategy<Value = Inputs> {
    (
        0u64..2_000_000,
        0u64..7_200_000,
        1u32..64,
        0.0f64..10.0,
        any::<bool>(),
        1u64..100_000,
        0.01f64..=1.0,
        1u64..60,
        1u32..=10,
        any::<bool>(),
        0.0f64..0.1,
    )
        .prop_map(
            |(p, ms, c, price, hourly, life, u, hb, sb, tr, gb)| Inputs {
                payload_bytes: p,
                run_time: Duration::from_millis(ms),
                jobs_per_box: c,
                instance_per_hour: price,
                billing: if hourly {
                    Billing::Hourly
                } else {
                    Billing::PerSecond
                },
                instance_lifetime: Duration::from_secs(life),
                utilization: u,
                heartbeat_interval: Duration::from_secs(hb),
                send_batch: sb,
                tracking: tr,
                transfer_per_gb: gb,
                ..Inputs::default()
            },
        )
}

proptest! {
    #[test]
    fn cost_is_monotone_in_price(i in inputs(), more in 0.0f64..10.0) {
        let a = estimate(&i).unwrap();
        let dearer = estimate(&Inputs { instance_per_hour: i.instance_per_hour + more, ..i.clone() }).unwrap();
        prop_assert!(dearer.per_job() >= a.per_job());
        let sqs = estimate(&Inputs { sqs_per_million: i.sqs_per_million + more, ..i.clone() }).unwrap();
        prop_assert!(sqs.per_job() >= a.per_job());
    }

    #[test]
    fn cost_is_monotone_in_run_time(i in inputs(), more_ms in 0u64..3_600_000) {
        let a = estimate(&i).unwrap();
        let longer = estimate(&Inputs { run_time: i.run_time + Duration::from_millis(more_ms), ..i.clone() }).unwrap();
        prop_assert!(longer.per_job() >= a.per_job(), "{} < {}", longer.per_job(), a.per_job());
        prop_assert!(longer.requests.total() >= a.requests.total());
    }

    #[test]
    fn cost_is_monotone_in_payload(i in inputs(), more in 0u64..1_000_000) {
        let a = estimate(&i).unwrap();
        let bigger = estimate(&Inputs { payload_bytes: i.payload_bytes + more, ..i.clone() }).unwrap();
        prop_assert!(bigger.per_job() >= a.per_job(), "{} < {}", bigger.per_job(), a.per_job());
        prop_assert!(bigger.requests.total() >= a.requests.total());
    }
}
