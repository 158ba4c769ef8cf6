//! The drain's calls under black holes: deletes, lease renewals, and the
//! hand-backs at SIGTERM and at a spot notice.
//!
//! Shares are deterministic (`Share::Every`): the first matching call is
//! always one that never answers, so each test proves the path survives it
//! rather than hoping a random draw hits.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{duplicates, missing_bodies, recorder_config, runs, seen, send_many, tail};
use crate::support::*;

/// The calls a hand-back may take, whichever way the agent makes it: a
/// visibility of 0, or a copy of the message sent and the original
/// deleted. (No lease renewal is due while the tests below hand back: the
/// lease is 60 s, renewed every 20 s, and the hand-backs start within
/// seconds of the receive.)
const HAND_BACK_CALLS: [&str; 6] = [
    "ChangeMessageVisibilityBatch",
    "ChangeMessageVisibility",
    "SendMessageBatch",
    "SendMessage",
    "DeleteMessageBatch",
    "DeleteMessage",
];

/// From now on one hand-back call in five is read and never answered (the
/// first included), and one in five of the rest takes effect with its
/// answer lost.
fn black_hole_hand_backs(proxy: &FaultProxy) {
    proxy.add(Rule::new(Fault::BlackHoleBefore, Share::Every(5)).apis(&HAND_BACK_CALLS));
    proxy.add(Rule::new(Fault::BlackHoleAfter, Share::Every(5)).apis(&HAND_BACK_CALLS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_complete_while_some_never_answer() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "deletes", None).await;
    let proxy = FaultProxy::start(moto.port);
    // One delete in ten is read and dropped; of the rest, one in ten reaches
    // SQS (the messages are deleted) and its answer is lost. ~19 % in all.
    let deletes = ["DeleteMessageBatch", "DeleteMessage"];
    proxy.add(Rule::new(Fault::BlackHoleBefore, Share::Every(10)).apis(&deletes));
    proxy.add(Rule::new(Fault::BlackHoleAfter, Share::Every(10)).apis(&deletes));
    let wd = Workdir::new();
    // A lease well beyond a bounded call and its retry: a delete that
    // lands late is still a delete, not a second run.
    let (cfg, out) = recorder_config(&wd, &proxy.endpoint, &url, "30s", "10s", "concurrency = 8");
    let n = 100;
    let bodies = send_many(&sqs, &url, "job", n).await;
    let mut agent = Agent::start(&cfg, &[("OUT", out.to_str().unwrap())]);

    let done = eventually(Duration::from_secs(90), || async {
        let r = runs(&out);
        (bodies.iter().all(|b| r.contains_key(b)) && depth(&sqs, &url).await == (0, 0))
            .then_some(())
    })
    .await;
    let r = runs(&out);
    assert!(
        done.is_some(),
        "after 90 s: {} of {n} messages ran, {} runs, queue (visible, in flight) {:?}; {}\nlog (last lines; all of it below):\n{}",
        r.len(),
        r.values().sum::<usize>(),
        depth(&sqs, &url).await,
        seen(&proxy),
        tail(&agent.logs())
    );
    assert!(proxy.injected("black_hole_before") >= 1 && proxy.injected("black_hole_after") >= 1);
    assert!(
        duplicates(&r) <= n / 20,
        "{} runs beyond the first: {r:?}",
        duplicates(&r)
    );
    agent.signal(Signal::SIGTERM);
    assert_eq!(
        agent.wait_exit(Duration::from_secs(30)),
        Some(0),
        "log (last lines; all of it below):\n{}",
        tail(&agent.logs())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_keep_long_jobs_invisible_while_some_never_answer() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "renewals", None).await;
    let proxy = FaultProxy::start(moto.port);
    // ~19 % of renewals: one in ten dropped unanswered, one in ten of the
    // rest applied by SQS with the answer lost. The first two in a row.
    let renewals = ["ChangeMessageVisibilityBatch", "ChangeMessageVisibility"];
    proxy.add(Rule::new(Fault::BlackHoleBefore, Share::Every(10)).apis(&renewals));
    proxy.add(Rule::new(Fault::BlackHoleAfter, Share::Every(10)).apis(&renewals));
    let wd = Workdir::new();
    // Jobs run 32 s: more than two leases of 15 s, renewed every 2 s.
    let (cfg, out) = recorder_config(&wd, &proxy.endpoint, &url, "15s", "2s", "concurrency = 8");
    let bodies = send_many(&sqs, &url, "long", 8).await;
    let agent = Agent::start(&cfg, &[("OUT", out.to_str().unwrap()), ("LONG", "32")]);
    let running = eventually(Duration::from_secs(20), || async {
        (depth(&sqs, &url).await == (0, 8)).then_some(())
    })
    .await;
    assert!(
        running.is_some(),
        "log (last lines; all of it below):\n{}",
        tail(&agent.logs())
    );
    let started = Instant::now();
    // Another worker polls the queue meanwhile: a message whose lease ran
    // out would be delivered to it while its job still runs here.
    while started.elapsed() < Duration::from_secs(28) {
        if let Some(m) = receive_one(&sqs, &url, 1).await {
            panic!(
                "{:?} into the jobs, message {:?} became visible while its job ran (lease ran out: renewals stalled); {}\nlog (last lines; all of it below):\n{}",
                started.elapsed(),
                m.1,
                seen(&proxy),
                tail(&agent.logs())
            );
        }
    }
    let done = eventually(Duration::from_secs(40), || async {
        let r = runs(&out);
        (bodies.iter().all(|b| r.contains_key(b)) && depth(&sqs, &url).await == (0, 0))
            .then_some(())
    })
    .await;
    let r = runs(&out);
    assert!(
        done.is_some(),
        "runs {r:?}, queue {:?}; {}\nlog (last lines; all of it below):\n{}",
        depth(&sqs, &url).await,
        seen(&proxy),
        tail(&agent.logs())
    );
    assert_eq!(duplicates(&r), 0, "second runs: {r:?}");
    assert!(proxy.injected("black_hole_before") >= 1, "{}", seen(&proxy));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_back_and_exits_while_some_hand_backs_never_answer() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "sigterm", None).await;
    let proxy = FaultProxy::start(moto.port);
    let wd = Workdir::new();
    // A lease of 60 s renewed every 20 s: without the hand-back the
    // messages stay hidden for most of a minute after the stop.
    let (cfg, out) = recorder_config(
        &wd,
        &proxy.endpoint,
        &url,
        "60s",
        "20s",
        "concurrency = 8\n[agent]\ndrain_timeout = \"3s\"",
    );
    let (drain_timeout, kill_grace) = (Duration::from_secs(3), Duration::from_secs(1));
    let bodies = send_many(&sqs, &url, "long", 8).await;
    let mut agent = Agent::start(&cfg, &[("OUT", out.to_str().unwrap())]);
    let running = eventually(Duration::from_secs(20), || async {
        (depth(&sqs, &url).await == (0, 8)).then_some(())
    })
    .await;
    assert!(
        running.is_some(),
        "log (last lines; all of it below):\n{}",
        tail(&agent.logs())
    );
    black_hole_hand_backs(&proxy);
    agent.signal(Signal::SIGTERM);
    let termed = Instant::now();

    let back = eventually(
        drain_timeout + kill_grace + Duration::from_secs(20),
        || async { (depth(&sqs, &url).await.0 >= 8).then_some(()) },
    )
    .await;
    let visible = depth(&sqs, &url).await;
    let limit =
        (drain_timeout + kill_grace + Duration::from_secs(30)).saturating_sub(termed.elapsed());
    let code = agent.wait_exit(limit);
    let exited = code.map(|_| termed.elapsed());
    assert!(
        back.is_some(),
        "{:?} after SIGTERM, (visible, in flight) = {visible:?}: the long jobs' messages were not handed back (exit code {code:?} after {exited:?}); {}\nlog (last lines; all of it below):\n{}",
        drain_timeout + kill_grace + Duration::from_secs(20),
        seen(&proxy),
        tail(&agent.logs())
    );
    assert!(proxy.injected("black_hole_before") >= 1, "{}", seen(&proxy));
    let missing = missing_bodies(&sqs, &url, &bodies).await;
    assert!(missing.is_empty(), "not visible again: {missing:?}");
    assert_eq!(
        code,
        Some(0),
        "no exit within drain_timeout + kill_grace + 30 s of SIGTERM; log (last lines; all of it below):\n{}",
        tail(&agent.logs())
    );
    assert!(read_lines(&out).is_empty(), "no job finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_hand_backs_beat_the_deadline_while_some_never_answer() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "spot", None).await;
    let proxy = FaultProxy::start(moto.port);
    let sim = ImdsSim::start("i-0spotnet");
    let wd = Workdir::new();
    let (cfg, out) = recorder_config(
        &wd,
        &proxy.endpoint,
        &url,
        "60s",
        "20s",
        "concurrency = 8\n[metadata]\nspot_margin = \"5s\"\nspot_signal_jobs = \"immediately\"",
    );
    let bodies = send_many(&sqs, &url, "long", 8).await;
    let mut env = sim.env();
    env.push(("OUT", out.to_str().unwrap().into()));
    env.push(("DRAINERD_FLEET_ENDPOINT_URL", moto.endpoint.clone()));
    let agent = start_agent(&cfg, &env);
    let running = eventually(Duration::from_secs(20), || async {
        (depth(&sqs, &url).await == (0, 8)).then_some(())
    })
    .await;
    assert!(
        running.is_some(),
        "log (last lines; all of it below):\n{}",
        tail(&agent.logs())
    );
    black_hole_hand_backs(&proxy);
    // Interruption in 30 s; every message must be settled by 25 s.
    let notice = sim.call("POST", "/spot", r#"{"action":"terminate","in":"30s"}"#);
    let time = humantime::parse_rfc3339(notice["spot"]["time"].as_str().unwrap()).unwrap();
    let deadline = time - Duration::from_secs(5);
    let until_deadline = deadline
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();

    let back = eventually(until_deadline, || async {
        (depth(&sqs, &url).await.0 >= 8).then_some(())
    })
    .await;
    let late = std::time::SystemTime::now()
        .duration_since(deadline)
        .map(|d| format!("{d:?} after"))
        .unwrap_or_else(|e| format!("{:?} before", e.duration()));
    assert!(
        back.is_some() && std::time::SystemTime::now() < deadline,
        "{late} the deadline ({} = interruption time - spot_margin), (visible, in flight) = {:?}: the messages were not handed back in time; {}\nlog (last lines; all of it below):\n{}",
        humantime::format_rfc3339_seconds(deadline),
        depth(&sqs, &url).await,
        seen(&proxy),
        tail(&agent.logs())
    );
    assert!(proxy.injected("black_hole_before") >= 1, "{}", seen(&proxy));
    let missing = missing_bodies(&sqs, &url, &bodies).await;
    assert!(missing.is_empty(), "not visible again: {missing:?}");
    assert!(read_lines(&out).is_empty(), "no job finished");
}
