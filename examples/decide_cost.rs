//! Benchmark helper: the cost of one stay/leave decision (`leave::decide`),
//! which the fleet logic takes every check. Prints ns per call.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use drainerd::decide::leave::{decide, Billing, Inputs, Rules};

fn main() {
    let launch = SystemTime::now() - Duration::from_secs(57 * 60);
    let inputs = Inputs {
        now: SystemTime::now(),
        launch_time: launch,
        idle_since: Some(SystemTime::now() - Duration::from_secs(400)),
        jobs_running: 0,
        messages_in_flight: 0,
        backlog: 3,
        in_service: 4,
        desired: 4,
        min: 1,
        draining: false,
    };
    for billing in [Billing::PerSecond, Billing::Hourly] {
        let rules = Rules {
            billing,
            idle_timeout: Duration::from_secs(300),
            min_lifetime: Duration::from_secs(300),
            backlog_per_instance: 1.0,
            hourly_window: Duration::from_secs(300),
        };
        let n = 1_000_000u32;
        let start = Instant::now();
        let mut leaves = 0u32;
        for _ in 0..n {
            leaves += u32::from(decide(black_box(&inputs), black_box(&rules)).leaves());
        }
        let per = start.elapsed() / n;
        println!("decide() {billing:?}: {per:?} per call ({leaves} of {n} leave)");
    }
}
