//! A job's retry budget is the job's: agent faults (a command that cannot
//! start) and interruptions (shutdown, spot) never bring a message closer
//! to the dead-letter queue; exit 0 is success whenever it comes; a spot
//! deadline is a deadline; and every drain for a notice ends.
//!
//! The queues here dead-letter after 2 receives (`maxReceiveCount` 2), so
//! a single spent receive too many shows.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use support::*;

/// Appends "<event> <body> <receive count> <interruptions>" to `$OUT`.
const RECORD: &str = r#"body=$(cat)
rec() { echo "$1 $body $DRAINERD_RECEIVE_COUNT $DRAINERD_INTERRUPTIONS" >> "$OUT"; }"#;

fn lines_with(path: &std::path::Path, word: &str) -> Vec<String> {
    read_lines(path)
        .into_iter()
        .filter(|l| l.split(' ').next() == Some(word))
        .collect()
}

/// A command that does not exist at first: every message is handed back
/// without spending a receive, intake closes after three failures in a
/// row, and once the command is installed the agent takes work again and
/// every job runs. (Before, 20 of 20 messages were dead-lettered within
/// 25 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_cannot_start_dead_letters_nothing() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, dlq) = create_queue(&sqs, "broken", Some(2)).await;
    let dlq = dlq.unwrap();
    let wd = Workdir::new();
    let out = wd.path("ran");
    let worker = wd.path("worker");
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[worker.to_str().unwrap()],
        "concurrency = 2",
    );
    for i in 0..20 {
        send(&sqs, &url, &format!("job-{i}")).await;
    }
    let (agent, port) = start_with_page(&cfg, vec![("OUT", out.to_str().unwrap().into())]).await;
    assert!(
        agent
            .wait_log("jobs cannot start", Duration::from_secs(20))
            .await,
        "{}",
        agent.logs()
    );
    let (code, _, body) = get(port, "/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("jobs cannot start"), "{body}");
    let status: serde_json::Value = serde_json::from_str(&get(port, "/status.json").2).unwrap();
    assert!(status["agent"]["cannot_start"].is_string(), "{status}");
    assert!(
        status["jobs"]["not_started"].as_u64().unwrap() >= 3,
        "{status}"
    );
    // Intake is closed: the rest of the queue waits for a worker that can
    // run it, and nothing reaches the DLQ.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(depth(&sqs, &dlq).await, (0, 0), "nothing dead-lettered");

    // Install the command: the probe finds it and work resumes.
    wd.script("worker", &format!("{RECORD}\nrec ran"));
    let all = eventually(Duration::from_secs(60), || async {
        (read_lines(&out).len() >= 20 && depth(&sqs, &url).await == (0, 0)).then_some(())
    })
    .await;
    assert!(
        all.is_some(),
        "ran {:?}\n{}",
        read_lines(&out),
        agent.logs()
    );
    assert!(agent.logs().contains("can start again"), "{}", agent.logs());
    let mut bodies: Vec<String> = read_lines(&out)
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap().to_string())
        .collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 20, "every job ran");
    assert_eq!(depth(&sqs, &dlq).await, (0, 0), "nothing dead-lettered");
    let (code, _, _) = get(port, "/readyz");
    assert_eq!(code, 200);
}

/// A long job whose instance is stopped twice (SIGTERM drains) runs to
/// its end on the third instance: interruptions are counted in
/// `DRAINERD_INTERRUPTIONS`, not in the receive count. (Before, it went to
/// the DLQ on its third delivery without ever failing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interruptions_do_not_spend_the_receive_budget() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, dlq) = create_queue(&sqs, "interrupted", Some(2)).await;
    let dlq = dlq.unwrap();
    let wd = Workdir::new();
    let out = wd.path("ran");
    // Long the first two times (it is interrupted), short the third.
    let job = wd.script(
        "job.sh",
        &format!(
            "{RECORD}\nrec start\nif [ \"$DRAINERD_INTERRUPTIONS\" -lt 2 ]; then sleep 300; fi\nrec done"
        ),
    );
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        "[agent]\ndrain_timeout = \"1s\"",
    );
    send(&sqs, &url, "long").await;
    for round in 0..2 {
        let mut agent = Agent::start(&cfg, &[("OUT", out.to_str().unwrap())]);
        let started = eventually(Duration::from_secs(20), || async {
            (lines_with(&out, "start").len() > round).then_some(())
        })
        .await;
        assert!(started.is_some(), "round {round}: {}", agent.logs());
        agent.signal(Signal::SIGTERM);
        assert_eq!(
            agent.wait_exit(Duration::from_secs(30)),
            Some(0),
            "{}",
            agent.logs()
        );
    }
    let agent = Agent::start(&cfg, &[("OUT", out.to_str().unwrap())]);
    let done = eventually(Duration::from_secs(30), || async {
        (!lines_with(&out, "done").is_empty() && depth(&sqs, &url).await == (0, 0)).then_some(())
    })
    .await;
    assert!(done.is_some(), "{:?}\n{}", read_lines(&out), agent.logs());
    assert_eq!(
        lines_with(&out, "start"),
        ["start long 1 0", "start long 1 1", "start long 1 2"],
        "each run is its copy's first receive; interruptions counted apart"
    );
    assert_eq!(depth(&sqs, &dlq).await, (0, 0), "nothing dead-lettered");
}

/// A job that traps the SIGTERM sent at its timeout and exits 0 within the
/// kill grace has succeeded: it runs once and its message is deleted.
/// (Before, it was handed back as a failure and ran three times.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_0_in_the_kill_grace_is_success() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, dlq) = create_queue(&sqs, "graceful", Some(2)).await;
    let wd = Workdir::new();
    let out = wd.path("ran");
    // The trap is the job's first command; the timeout (3 s) comes long
    // after a shell has read it.
    let job = wd.script(
        "job.sh",
        &format!(
            "trap 'rec finished; exit 0' TERM\n{RECORD}\nrec start\nwhile :; do sleep 0.1; done"
        ),
    );
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        "timeout = \"3s\"",
    );
    send(&sqs, &url, "graceful").await;
    let agent = Agent::start(
        &cfg,
        &[
            ("OUT", out.to_str().unwrap()),
            ("DRAINERD_JOB_KILL_GRACE", "2s"),
        ],
    );
    let gone = eventually(Duration::from_secs(30), || async {
        (lines_with(&out, "finished").len() == 1 && depth(&sqs, &url).await == (0, 0)).then_some(())
    })
    .await;
    assert!(gone.is_some(), "{:?}\n{}", read_lines(&out), agent.logs());
    // Had it been handed back, it would run again after the 1 s backoff.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(lines_with(&out, "start").len(), 1, "ran once");
    assert_eq!(depth(&sqs, &dlq.unwrap()).await, (0, 0));
    assert!(
        agent.logs().contains("outcome=\"succeeded\""),
        "{}",
        agent.logs()
    );
}

fn unix_ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis()
}

/// A spot notice seen late (the deadline 5 s away, the kill grace 10 s):
/// SIGKILL comes at the deadline, not a grace after SIGTERM, and the
/// message is back for another worker by then. (Before, a job ignoring
/// SIGTERM ran 4.4 s past the deadline.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_comes_at_the_spot_deadline_whatever_the_grace() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "spot-late", Some(2)).await;
    let sim = ImdsSim::start("i-0late");
    let wd = Workdir::new();
    let beats = wd.path("beats");
    let job = wd.script(
        "job.sh",
        "trap '' TERM\ncat >/dev/null\nwhile :; do date +%s%3N >> \"$BEATS\"; sleep 0.1; done",
    );
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        // The defaults: a 15 s margin and a 10 s grace.
        "timeout = \"10m\"\n[metadata]\nspot_margin = \"15s\"",
    );
    send(&sqs, &url, "stubborn").await;
    let mut env = sim.env();
    env.push(("BEATS", beats.to_str().unwrap().into()));
    env.push(("DRAINERD_JOB_KILL_GRACE", "10s".into()));
    env.push(("DRAINERD_FLEET_ENDPOINT_URL", moto.endpoint.clone()));
    let agent = start_agent(&cfg, &env);
    let running = eventually(Duration::from_secs(20), || async {
        (!read_lines(&beats).is_empty()).then_some(())
    })
    .await;
    assert!(running.is_some(), "{}", agent.logs());
    // Interruption in 20 s: the deadline (time - 15 s margin) is 5 s away,
    // half the grace.
    let notice = sim.call("POST", "/spot", r#"{"action":"terminate","in":"20s"}"#);
    let time = humantime::parse_rfc3339(notice["spot"]["time"].as_str().unwrap()).unwrap();
    let deadline = unix_ms(time) - 15_000;
    let (back, _) = receive_until(&sqs, &url, "stubborn", Duration::from_secs(30)).await;
    assert!(back, "{}", agent.logs());
    let got_back = unix_ms(SystemTime::now());
    let last_beat: u128 = read_lines(&beats).last().unwrap().parse().unwrap();
    // Beats come every 0.1 s; the grace would have let it run until 5 s
    // past the deadline.
    assert!(
        last_beat <= deadline + 1_000,
        "the job ran {} ms past the deadline\n{}",
        last_beat.saturating_sub(deadline),
        agent.logs()
    );
    assert!(
        got_back <= deadline + 2_500,
        "handed back {} ms after the deadline",
        got_back.saturating_sub(deadline)
    );
}

/// A withdrawn spot stop notice and a maintenance event that is over end
/// their drains: the agent takes work again. (Before, it stayed drained,
/// taking no work, until restarted.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_ends_when_its_notice_is_withdrawn() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "withdrawn", None).await;
    let sim = ImdsSim::start("i-0withdrawn");
    let wd = Workdir::new();
    let out = wd.path("ran");
    let job = wd.script("job.sh", &format!("{RECORD}\nrec ran"));
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        "[metadata]\nmaintenance = \"drain\"\nmaintenance_lead = \"1h\"",
    );
    let mut env = sim.env();
    env.push(("OUT", out.to_str().unwrap().into()));
    env.push(("DRAINERD_FLEET_ENDPOINT_URL", moto.endpoint.clone()));
    let agent = start_agent(&cfg, &env);
    assert!(
        agent
            .wait_log("drainerd ready", Duration::from_secs(15))
            .await
    );
    // "21 Jan 2019 09:00:43 GMT", as IMDS writes maintenance dates.
    let not_before = {
        let s = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(600))
            .to_string();
        let (date, time) = s.trim_end_matches('Z').split_once('T').unwrap();
        let d: Vec<&str> = date.split('-').collect();
        let months = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let month = months[d[1].parse::<usize>().unwrap() - 1];
        format!("{} {month} {} {time} GMT", d[2], d[0])
    };
    for (kind, notice, withdraw) in [
        (
            "spot stop",
            (
                "POST",
                "/spot",
                r#"{"action":"stop","in":"10m"}"#.to_string(),
            ),
            ("DELETE", "/spot"),
        ),
        (
            "maintenance",
            (
                "POST",
                "/maintenance",
                format!(
                    r#"[{{"Code":"system-reboot","Description":"reboot","EventId":"instance-event-1","NotBefore":"{not_before}","NotAfter":"{not_before}","State":"active"}}]"#
                ),
            ),
            ("DELETE", "/maintenance"),
        ),
    ] {
        let drains = agent.logs().matches("draining: stopped receiving").count();
        sim.call(notice.0, notice.1, &notice.2);
        let drained = eventually(Duration::from_secs(15), || async {
            (agent.logs().matches("draining: stopped receiving").count() > drains).then_some(())
        })
        .await;
        assert!(drained.is_some(), "{kind}: {}", agent.logs());
        let marker = format!("during-{}", kind.replace(' ', "-"));
        send(&sqs, &url, &marker).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            !read_lines(&out).iter().any(|l| l.contains(&marker)),
            "{kind}: no work while drained"
        );
        let resumes = agent.logs().matches("taking work again").count();
        sim.call(withdraw.0, withdraw.1, "");
        let resumed = eventually(Duration::from_secs(15), || async {
            (agent.logs().matches("taking work again").count() > resumes).then_some(())
        })
        .await;
        assert!(resumed.is_some(), "{kind}: {}", agent.logs());
        let ran = eventually(Duration::from_secs(20), || async {
            read_lines(&out)
                .iter()
                .any(|l| l.contains(&marker))
                .then_some(())
        })
        .await;
        assert!(ran.is_some(), "{kind}: work resumed\n{}", agent.logs());
    }
}

/// A drain for a rebalance recommendation ends by leaving the group once
/// every job has ended. (Before, the instance stayed in service taking no
/// work, and never left: the leave decision refuses while draining.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_drain_leaves_the_group() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "rebalance", None).await;
    let asg = asg_client(&moto.endpoint);
    let me = create_group(&asg, &moto.endpoint, "rebalancing", 2).await[0].clone();
    let sim = ImdsSim::start(&me);
    let wd = Workdir::new();
    let job = wd.script("job.sh", "cat >/dev/null; sleep 2");
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        "[metadata]\nrebalance = \"drain\"\n[fleet]\ncheck_interval = \"1s\"",
    );
    let mut env = sim.env();
    env.push(("DRAINERD_FLEET_ENDPOINT_URL", moto.endpoint.clone()));
    let agent = start_agent(&cfg, &env);
    assert!(
        agent
            .wait_log("member of Auto Scaling group", Duration::from_secs(15))
            .await,
        "{}",
        agent.logs()
    );
    send(&sqs, &url, "running").await;
    let running = eventually(Duration::from_secs(15), || async {
        (depth(&sqs, &url).await == (0, 1)).then_some(())
    })
    .await;
    assert!(running.is_some());
    sim.call("POST", "/rebalance", "");
    let left = eventually(Duration::from_secs(30), || async {
        let g = asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names("rebalancing")
            .send()
            .await
            .unwrap();
        (g.auto_scaling_groups()[0].desired_capacity() == Some(1)).then_some(())
    })
    .await;
    assert!(left.is_some(), "{}", agent.logs());
    let logs = agent.logs();
    assert!(
        logs.contains("left the group: drained for a rebalance recommendation"),
        "{logs}"
    );
    assert!(
        logs.contains("outcome=\"succeeded\""),
        "the running job finished first: {logs}"
    );
    assert_eq!(depth(&sqs, &url).await, (0, 0));
}
