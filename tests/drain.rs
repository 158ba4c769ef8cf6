//! The drain loop against moto and real child processes: every message
//! ends deleted after success or visible again — never lost.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::*;

/// Records `id|receive count|attr|deadline|body|start ns|end ns` per job.
const RECORDER: &str = r#"start=$(date +%s%N)
body=$(cat)
sleep "${SLEEP:-0.2}"
printf '%s|%s|%s|%s|%s|%s|%s\n' "$DRAINERD_MESSAGE_ID" "$DRAINERD_RECEIVE_COUNT" "$DRAINERD_ATTR_KIND" "$DRAINERD_DEADLINE" "$body" "$start" "$(date +%s%N)" >> "$OUT"
"#;

fn records(path: &std::path::Path) -> Vec<Vec<String>> {
    read_lines(path)
        .into_iter()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_messages_run_once_each_at_most_four_at_a_time() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "jobs", None).await;
    let wd = Workdir::new();
    let out = wd.path("jobs.log");
    let job = wd.script("job.sh", RECORDER);
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        "concurrency = 4\n[job.env]\nSLEEP = \"0.3\"",
    );
    let mut expected = HashMap::new();
    for i in 0..50 {
        // Shell metacharacters in bodies reach the job verbatim, never a shell.
        let body = format!("job {i} $(touch /tmp/pwned) `id` ; \"quoted\"");
        let id = sqs
            .send_message()
            .queue_url(&url)
            .message_body(&body)
            .message_attributes(
                "kind",
                aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(format!("k{i}"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap()
            .message_id()
            .unwrap()
            .to_string();
        expected.insert(id, (body, format!("k{i}")));
    }
    let mut agent = Agent::start(&cfg, &[("OUT", out.to_str().unwrap())]);
    let done = eventually(Duration::from_secs(60), || async {
        (records(&out).len() >= 50).then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "only {} of 50 jobs ran",
        records(&out).len()
    );
    let empty = eventually(Duration::from_secs(10), || async {
        (depth(&sqs, &url).await == (0, 0)).then_some(())
    })
    .await;
    assert!(
        empty.is_some(),
        "queue not empty: {:?}",
        depth(&sqs, &url).await
    );

    let recs = records(&out);
    assert_eq!(recs.len(), 50, "each job ran exactly once");
    let mut intervals = Vec::new();
    for r in &recs {
        let (body, kind) = expected.remove(&r[0]).expect("a known message, run once");
        assert_eq!(r[1], "1", "first receive");
        assert_eq!(r[2], kind, "attribute reached DRAINERD_ATTR_KIND");
        assert!(
            r[3].ends_with('Z') && r[3].contains('T'),
            "RFC 3339 deadline: {}",
            r[3]
        );
        assert_eq!(r[4], body, "body arrived on stdin unchanged");
        intervals.push((r[5].parse::<u128>().unwrap(), r[6].parse::<u128>().unwrap()));
    }
    assert!(expected.is_empty());
    let overlap = max_overlap(&intervals);
    assert!(overlap <= 4, "{overlap} jobs ran at once with 4 slots");
    assert!(overlap >= 2, "jobs should run concurrently (saw {overlap})");
    assert!(!std::path::Path::new("/tmp/pwned").exists());

    agent.signal(Signal::SIGTERM);
    assert_eq!(agent.wait_exit(Duration::from_secs(30)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_job_backs_off_then_dead_letters() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, dlq) = create_queue(&sqs, "fails", Some(3)).await;
    let dlq = dlq.unwrap();
    let wd = Workdir::new();
    let out = wd.path("attempts.log");
    let job = wd.script(
        "fail.sh",
        "printf '%s %s\\n' \"$DRAINERD_RECEIVE_COUNT\" \"$(date +%s%N)\" >> \"$OUT\"\necho 'boom' >&2\nexit 3",
    );
    let cfg = wd.config(&moto.endpoint, &url, &[job.to_str().unwrap()], "");
    let id = send(&sqs, &url, "poison").await;
    let agent = Agent::start(&cfg, &[("OUT", out.to_str().unwrap())]);

    let in_dlq = eventually(Duration::from_secs(40), || async {
        receive_one(&sqs, &dlq, 0)
            .await
            .filter(|(mid, _, _)| *mid == id)
    })
    .await;
    assert!(
        in_dlq.is_some(),
        "message never reached the DLQ; log:\n{}",
        agent.logs()
    );
    let attempts: Vec<(u32, u128)> = read_lines(&out)
        .iter()
        .map(|l| {
            let (c, t) = l.split_once(' ').unwrap();
            (c.parse().unwrap(), t.parse().unwrap())
        })
        .collect();
    let counts: Vec<u32> = attempts.iter().map(|a| a.0).collect();
    assert_eq!(
        counts,
        vec![1, 2, 3],
        "receive count rises with each attempt"
    );
    // Backoff 1 s then 2 s (base 1 s, doubling): the gaps show it.
    let gap1 = (attempts[1].1 - attempts[0].1) / 1_000_000;
    let gap2 = (attempts[2].1 - attempts[1].1) / 1_000_000;
    assert!(gap1 >= 900, "first retry after >= 1 s, was {gap1} ms");
    assert!(gap2 >= 1900, "second retry after >= 2 s, was {gap2} ms");
    assert!(agent.logs().contains("boom"), "job stderr reaches the log");
    assert_eq!(depth(&sqs, &url).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_long_job_invisible_until_it_succeeds() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "long", None).await;
    let wd = Workdir::new();
    let job = wd.script("long.sh", "cat >/dev/null; sleep 9; echo done");
    // Lease 3 s, heartbeat every 1 s: the job runs three leases long.
    let cfg = wd.config(&moto.endpoint, &url, &[job.to_str().unwrap()], "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("lease = \"10s\"", "lease = \"3s\"")
        .replace("heartbeat_interval = \"3s\"", "heartbeat_interval = \"1s\"");
    std::fs::write(&cfg, text).unwrap();
    send(&sqs, &url, "long one").await;
    let agent = Agent::start(&cfg, &[]);
    // Wait until drainerd holds the message ("ready" comes before its first
    // receive: looking earlier, this test's own receive could take it).
    let taken = eventually(Duration::from_secs(15), || async {
        (depth(&sqs, &url).await == (0, 1)).then_some(())
    })
    .await;
    assert!(taken.is_some(), "log:\n{}", agent.logs());
    let start = Instant::now();
    // While the job runs, a second consumer never sees the message.
    while start.elapsed() < Duration::from_secs(8) {
        assert!(
            receive_one(&sqs, &url, 1).await.is_none(),
            "message became visible while its job ran; log:\n{}",
            agent.logs()
        );
    }
    let deleted = eventually(Duration::from_secs(10), || async {
        (agent.logs().contains("job finished") && depth(&sqs, &url).await == (0, 0)).then_some(())
    })
    .await;
    assert!(deleted.is_some(), "log:\n{}", agent.logs());
    assert!(!agent.logs().contains("possible duplicate"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_out_job_loses_its_whole_process_group_and_the_message_returns() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "slow", None).await;
    let wd = Workdir::new();
    let pids = wd.path("pids");
    // The job starts a grandchild that ignores SIGTERM, then waits forever.
    let job = wd.script(
        "hang.sh",
        "sh -c 'trap \"\" TERM; echo $$ >> \"$PIDS\"; exec sleep 300' &\necho $$ >> \"$PIDS\"\nsleep 300",
    );
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        "timeout = \"2s\"",
    );
    let id = send(&sqs, &url, "never ends").await;
    let agent = Agent::start(&cfg, &[("PIDS", pids.to_str().unwrap())]);
    assert!(
        agent.wait_log("timed out", Duration::from_secs(20)).await,
        "log:\n{}",
        agent.logs()
    );
    let listed = read_lines(&pids);
    assert_eq!(listed.len(), 2, "job and grandchild pids: {listed:?}");
    for pid in &listed {
        let gone = eventually(Duration::from_secs(5), || async {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting for its reaper: no longer running.
            (stat.is_empty() || stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z')))
                .then_some(())
        })
        .await;
        assert!(
            gone.is_some(),
            "process {pid} of the timed-out job is still running"
        );
    }
    // Backoff is 1 s: the message is back for another consumer soon.
    let back = eventually(Duration::from_secs(10), || async {
        receive_one(&sqs, &url, 1).await.filter(|m| m.0 == id)
    })
    .await;
    assert!(
        back.is_some(),
        "message did not come back; log:\n{}",
        agent.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_short_jobs_and_hands_the_long_one_back() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "term", None).await;
    let wd = Workdir::new();
    let out = wd.path("done.log");
    let job = wd.script(
        "job.sh",
        "body=$(cat)\nif [ \"$body\" = long ]; then sleep 120; else sleep 2; fi\necho \"$body\" >> \"$OUT\"",
    );
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        "concurrency = 3\n[agent]\ndrain_timeout = \"4s\"",
    );
    send(&sqs, &url, "short-1").await;
    send(&sqs, &url, "short-2").await;
    send(&sqs, &url, "long").await;
    let mut agent = Agent::start(&cfg, &[("OUT", out.to_str().unwrap())]);
    let all_running = eventually(Duration::from_secs(15), || async {
        (depth(&sqs, &url).await == (0, 3)).then_some(())
    })
    .await;
    assert!(all_running.is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(&sqs, &url, "late").await;
    agent.signal(Signal::SIGTERM);
    let sent_term = Instant::now();

    // Everything a second consumer receives, in order.
    // A copy (a new message id) whose receive count starts again: the
    // shutdown did not spend the job's budget.
    let (back, seen) = receive_until(&sqs, &url, "long", Duration::from_secs(15)).await;
    let waited = sent_term.elapsed();
    assert!(
        back,
        "long job's message not handed back; log:\n{}",
        agent.logs()
    );
    // Handed back at the drain timeout (4 s) + kill grace (1 s); another
    // consumer has it within 2 s of that.
    assert!(waited < Duration::from_secs(7), "hand-back took {waited:?}");
    let long = seen.iter().find(|m| m.1 == "long").unwrap();
    assert_eq!(long.2, 1, "the copy's first receive: {seen:?}");
    assert_eq!(
        agent.wait_exit(Duration::from_secs(20)),
        Some(0),
        "log:\n{}",
        agent.logs()
    );
    let done = read_lines(&out);
    assert!(done.contains(&"short-1".to_string()) && done.contains(&"short-2".to_string()));
    assert!(!done.contains(&"long".to_string()));
    assert!(
        !done.contains(&"late".to_string()),
        "no job started after SIGTERM"
    );
    // "late" was never taken (or was handed straight back): it is visible.
    let late_seen = seen.iter().any(|m| m.1 == "late");
    let late = late_seen
        || receive_one(&sqs, &url, 2)
            .await
            .is_some_and(|m| m.1 == "late");
    assert!(
        late,
        "the message sent before SIGTERM is available to others"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_lowers_concurrency_live_and_keeps_config_when_file_is_broken() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "reload", None).await;
    let wd = Workdir::new();
    let out = wd.path("jobs.log");
    let job = wd.script("job.sh", RECORDER);
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        "concurrency = 4\n[job.env]\nSLEEP = \"2\"",
    );
    for i in 0..4 {
        send(&sqs, &url, &format!("first-{i}")).await;
    }
    let agent = Agent::start(&cfg, &[("OUT", out.to_str().unwrap())]);
    let running = eventually(Duration::from_secs(15), || async {
        (depth(&sqs, &url).await.1 == 4).then_some(())
    })
    .await;
    assert!(running.is_some());
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("concurrency = 4", "concurrency = 1");
    std::fs::write(&cfg, &text).unwrap();
    agent.signal(Signal::SIGHUP);
    assert!(
        agent
            .wait_log("configuration reloaded", Duration::from_secs(5))
            .await
    );
    for i in 0..4 {
        send(&sqs, &url, &format!("second-{i}")).await;
    }
    let done = eventually(Duration::from_secs(40), || async {
        (records(&out).len() >= 8).then_some(())
    })
    .await;
    assert!(done.is_some(), "log:\n{}", agent.logs());
    let recs = records(&out);
    let first: Vec<_> = recs.iter().filter(|r| r[4].starts_with("first")).collect();
    assert_eq!(
        first.len(),
        4,
        "running jobs were not touched by the reload"
    );
    let second: Vec<(u128, u128)> = recs
        .iter()
        .filter(|r| r[4].starts_with("second"))
        .map(|r| (r[5].parse().unwrap(), r[6].parse().unwrap()))
        .collect();
    assert_eq!(max_overlap(&second), 1, "after reload, one job at a time");

    std::fs::write(&cfg, "[queue\nthis is not toml").unwrap();
    agent.signal(Signal::SIGHUP);
    assert!(
        agent
            .wait_log("reload refused", Duration::from_secs(5))
            .await
    );
    send(&sqs, &url, "after-broken").await;
    let ran = eventually(Duration::from_secs(15), || async {
        records(&out)
            .iter()
            .any(|r| r[4] == "after-broken")
            .then_some(())
    })
    .await;
    assert!(ran.is_some(), "agent kept working on its old configuration");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_and_deaf_jobs_keep_memory_bounded() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "big", None).await;
    // SQS accepts bodies up to 1 MiB; moto needs the queue attribute raised.
    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize,
            "1048576",
        )
        .send()
        .await
        .unwrap();
    let wd = Workdir::new();
    // "flood": 50 MB to stdout in long lines. Anything else: never read stdin.
    let job = wd.script(
        "job.sh",
        "if [ \"$DRAINERD_ATTR_MODE\" = flood ]; then head -c 50000000 /dev/zero | tr '\\0' 'x' | fold -w 100000; else sleep 1; fi",
    );
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        "concurrency = 2",
    );
    let big_body = "b".repeat(1024 * 1024 - 64);
    let send_mode = |body: String, mode: &'static str| {
        let sqs = sqs.clone();
        let url = url.clone();
        async move {
            sqs.send_message()
                .queue_url(url)
                .message_body(body)
                .message_attributes(
                    "mode",
                    aws_sdk_sqs::types::MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(mode)
                        .build()
                        .unwrap(),
                )
                .send()
                .await
                .unwrap();
        }
    };
    send_mode("flood".into(), "flood").await;
    send_mode(big_body, "deaf").await;
    let agent = Agent::start(&cfg, &[]);
    let both = eventually(Duration::from_secs(60), || async {
        (agent.logs().matches("job finished").count() >= 2).then_some(())
    })
    .await;
    assert!(both.is_some(), "log:\n{}", agent.logs());
    let peak_mib = agent.peak_rss_kib() / 1024;
    println!("agent peak RSS after a 50 MB flood and a 1 MiB unread body: {peak_mib} MiB");
    assert!(peak_mib < 48, "agent memory grew to {peak_mib} MiB");
    assert!(
        agent.logs().contains("lines were not logged"),
        "flood was rate-limited"
    );
    let empty = eventually(Duration::from_secs(10), || async {
        (depth(&sqs, &url).await == (0, 0)).then_some(())
    })
    .await;
    assert!(empty.is_some());
}

/// job.log_lines_per_second is a live setting: a reload changes the rate
/// jobs' output is logged at. (A second list of restart-only settings
/// once kept it silently.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_changes_the_job_output_rate() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "reload-rate", None).await;
    let wd = Workdir::new();
    let job = wd.script(
        "chatty.sh",
        "read body\ni=1\nwhile [ $i -le 60 ]; do echo \"$body-line-$i\"; i=$((i+1)); done",
    );
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        "log_lines_per_second = 1",
    );
    let agent = Agent::start(&cfg, &[]);
    let lines = |tag: &str| {
        agent
            .logs()
            .lines()
            .filter(|l| l.contains(&format!("{tag}-line-")))
            .count()
    };
    send(&sqs, &url, "before").await;
    assert!(
        agent
            .wait_log("lines were not logged", Duration::from_secs(20))
            .await,
        "{}",
        agent.logs()
    );
    assert!(lines("before") < 60, "at 1 line/s most lines are dropped");

    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("log_lines_per_second = 1", "log_lines_per_second = 10000");
    std::fs::write(&cfg, text).unwrap();
    agent.signal(Signal::SIGHUP);
    assert!(
        agent
            .wait_log("configuration reloaded", Duration::from_secs(5))
            .await
    );
    assert!(
        !agent.logs().contains("field=\"job.log_lines_per_second\""),
        "not refused"
    );
    send(&sqs, &url, "after").await;
    let all = eventually(Duration::from_secs(20), || async {
        (lines("after") == 60).then_some(())
    })
    .await;
    assert!(
        all.is_some(),
        "after the reload every line is logged: {} of 60\n{}",
        lines("after"),
        agent.logs()
    );
}
