//! Every slot busy: with many slots and a slow network, parallel receives
//! keep the slots fed (one receive at a time starts at most ten jobs per
//! round trip).

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use support::*;

/// 32 slots, 1 s jobs, every SQS request 0.5 s away (a delaying relay in
/// front of moto): from the first job's start to the last job's end, the
/// queue drains within 1.25 × the ideal time (jobs ÷ slots × 1 s). One
/// receive at a time brings at most 10 jobs per 0.5 s round trip, 20 jobs
/// a second for 32 slots' worth of 32: 1.6 ×.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_slots_stay_busy_behind_a_slow_network() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "scale", None).await;
    let proxy = Proxy::start(moto.port).await;
    let jobs = 256;
    for chunk in 0..(jobs / 10 + 1) {
        let entries: Vec<_> = (chunk * 10..(chunk * 10 + 10).min(jobs))
            .map(|i| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(format!("job-{i}"))
                    .build()
                    .unwrap()
            })
            .collect();
        if !entries.is_empty() {
            sqs.send_message_batch()
                .queue_url(&url)
                .set_entries(Some(entries))
                .send()
                .await
                .unwrap();
        }
    }
    proxy.delay_ms.store(500, Ordering::SeqCst);
    let wd = Workdir::new();
    let out = wd.path("runs");
    let job = wd.script(
        "job.sh",
        "cat >/dev/null; s=$(date +%s%3N); sleep 1; echo \"$s $(date +%s%3N)\" >> \"$OUT\"",
    );
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let cfg = wd.config(
        &endpoint,
        &url,
        &[job.to_str().unwrap()],
        "concurrency = 32",
    );
    let agent = Agent::start(&cfg, &[("OUT", out.to_str().unwrap())]);
    let done = eventually(Duration::from_secs(120), || async {
        (read_lines(&out).len() >= jobs).then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "{} of {jobs}\n{}",
        read_lines(&out).len(),
        agent.logs()
    );
    let runs: Vec<(u128, u128)> = read_lines(&out)
        .iter()
        .map(|l| {
            let (s, e) = l.split_once(' ').unwrap();
            (s.parse().unwrap(), e.parse().unwrap())
        })
        .collect();
    let first = runs.iter().map(|r| r.0).min().unwrap();
    let last = runs.iter().map(|r| r.1).max().unwrap();
    let took = Duration::from_millis((last - first) as u64);
    let ideal = Duration::from_secs((jobs / 32) as u64);
    assert!(
        took <= ideal.mul_f64(1.25),
        "{jobs} one-second jobs on 32 slots took {took:?}, ideal {ideal:?}\n{}",
        agent.logs()
    );
}
