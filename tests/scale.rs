//! Every slot busy: with many slots and a slow network, parallel receives
//! keep the slots fed (one receive at a time starts at most ten jobs per
//! round trip).

mod support;

use std::time::Duration;

use support::*;

/// 32 slots, 1 s jobs, every SQS request 0.5 s slower (the fault proxy in
/// front of moto). While the queue is backlogged more than one receive is
/// in flight (one at a time caps a box at ten jobs per round trip), and the
/// queue drains within 1.25 × the ideal time.
///
/// The ideal: no drainer that asks only for free slots (the rule drainerd
/// keeps) can refill a slot sooner than a receive's round trip after its
/// job ended, so each slot does one job per (job + round trip): the ideal
/// is (jobs ÷ slots) × (1 s + the receives' mean round trip as measured
/// here, 0.5 s plus moto's own time). Measured, not assumed, so a slow
/// moto on a busy machine moves the ideal, not the verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_slots_stay_busy_behind_a_slow_network() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "scale", None).await;
    let proxy = FaultProxy::start(moto.port);
    proxy.add(Rule::new(Fault::Slow(Duration::from_millis(500)), Share::Every(1)).apis(&["sqs"]));
    let jobs = 256;
    // moto slows with depth (each call scans the queue): feed it so that
    // at most about 40 messages wait, as a steady producer would.
    let feeder = {
        let (sqs, url) = (sqs.clone(), url.clone());
        tokio::spawn(async move {
            let mut sent = 0;
            while sent < jobs {
                if depth(&sqs, &url).await.0 > 30 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                let entries: Vec<_> = (sent..(sent + 10).min(jobs))
                    .map(|i| {
                        aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(format!("job-{i}"))
                            .build()
                            .unwrap()
                    })
                    .collect();
                sent += entries.len();
                sqs.send_message_batch()
                    .queue_url(&url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .unwrap();
            }
        })
    };
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
    let done = eventually(Duration::from_secs(180), || async {
        (read_lines(&out).len() >= jobs).then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "{} of {jobs}\n{}",
        read_lines(&out).len(),
        agent.logs()
    );
    feeder.await.unwrap();

    let receives: Vec<(std::time::Instant, std::time::Instant)> = proxy
        .events()
        .iter()
        .filter(|e| e.api == "ReceiveMessage")
        .filter_map(|e| Some((e.received, e.answered?)))
        .collect();
    let most_at_once = receives
        .iter()
        .map(|(s, _)| receives.iter().filter(|(a, b)| a <= s && s < b).count())
        .max()
        .unwrap_or(0);
    assert!(
        most_at_once >= 2,
        "one receive at a time caps the box at ten jobs per round trip: {most_at_once}"
    );
    let round_trip = receives
        .iter()
        .map(|(s, e)| e.duration_since(*s))
        .sum::<Duration>()
        / receives.len() as u32;
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
    let ideal = (Duration::from_secs(1) + round_trip) * (jobs / 32) as u32;
    eprintln!("took {took:?}, ideal {ideal:?}, receive round trip {round_trip:?}, up to {most_at_once} receives at once");
    assert!(
        took <= ideal.mul_f64(1.25),
        "{jobs} one-second jobs on 32 slots took {took:?}; ideal {ideal:?} (receive round trip {round_trip:?}, up to {most_at_once} receives at once)"
    );
}
