//! Instance metadata notices, with the metadata simulator as the peer:
//! spot interruptions hand work back before the instance dies, rebalance
//! follows its setting, and a misbehaving metadata service is survived.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::*;

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_interruption_settles_every_message_before_the_deadline() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "spot", None).await;
    let sim = ImdsSim::start("i-0spot");
    let wd = Workdir::new();
    let out = wd.path("events.log");
    // Short jobs take 3 s; the long one records the SIGTERM it gets.
    let job = wd.script(
        "job.sh",
        "body=$(cat)\ntrap 'echo \"term $body $(date +%s%N)\" >> \"$OUT\"; exit 143' TERM\nif [ \"$body\" = long ]; then sleep 300 & wait; else sleep 3; fi\necho \"done $body $(date +%s%N)\" >> \"$OUT\"",
    );
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        "concurrency = 3\n[metadata]\nspot_margin = \"5s\"",
    );
    send(&sqs, &url, "short-1").await;
    send(&sqs, &url, "short-2").await;
    send(&sqs, &url, "long").await;
    let mut env = sim.env();
    env.push(("OUT", out.to_str().unwrap().into()));
    env.push(("DRAINERD_FLEET_ENDPOINT_URL", moto.endpoint.clone()));
    env.push(("DRAINERD_JOB_KILL_GRACE", "2s".into()));
    let mut agent = start_agent(&cfg, &env);
    let running = eventually(Duration::from_secs(15), || async {
        (depth(&sqs, &url).await == (0, 3)).then_some(())
    })
    .await;
    assert!(running.is_some(), "log:\n{}", agent.logs());

    // Interruption 20 s from now: deadline = time - 5 s margin.
    let scheduled = Instant::now();
    let notice = sim.call("POST", "/spot", r#"{"action":"terminate","in":"20s"}"#);
    let notice_time = humantime::parse_rfc3339(notice["spot"]["time"].as_str().unwrap()).unwrap();
    let notice_ns = notice_time.duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let deadline_ns = notice_ns - 5_000_000_000;

    assert!(
        agent
            .wait_log("draining: stopped receiving", Duration::from_secs(3))
            .await,
        "log:\n{}",
        agent.logs()
    );
    assert!(
        scheduled.elapsed() <= Duration::from_millis(2500),
        "reaction took {:?} (poll 1 s + 1 s)",
        scheduled.elapsed()
    );
    send(&sqs, &url, "late").await;

    // Another consumer gets the long job's message before the notice time.
    let (back, seen) = receive_until(&sqs, &url, "long", Duration::from_secs(25)).await;
    let got_at = now_ns();
    assert!(
        back,
        "long job's message never came back; log:\n{}",
        agent.logs()
    );
    assert!(
        got_at < notice_ns,
        "handed back {} ms after the notice time",
        (got_at - notice_ns) / 1_000_000
    );

    let events = read_lines(&out);
    let find = |prefix: &str| {
        events
            .iter()
            .find(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u128>().unwrap())
    };
    assert!(
        find("done short-1").is_some() && find("done short-2").is_some(),
        "short jobs finish: {events:?}"
    );
    let term = find("term long").expect("the long job got SIGTERM");
    assert!(
        term < deadline_ns,
        "SIGTERM {} ms before the deadline",
        (deadline_ns - term) / 1_000_000
    );
    assert!(find("done long").is_none());
    assert!(
        !events.iter().any(|l| l.contains("late")),
        "nothing starts after the notice"
    );
    // The short jobs' messages are deleted; "late" is still there for others.
    let late_seen = seen.iter().any(|m| m.1 == "late");
    assert!(
        late_seen
            || receive_one(&sqs, &url, 2)
                .await
                .is_some_and(|m| m.1 == "late")
    );
    assert_eq!(depth(&sqs, &url).await.0, 0);
    assert!(agent.logs().contains("spot interruption notice"));
    // The agent stays up, drained, until it is stopped.
    assert!(agent.child.try_wait().unwrap().is_none());
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(agent.wait_exit(Duration::from_secs(10)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_recommendation_follows_its_setting() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    for action in ["ignore", "log", "drain"] {
        let (url, _) = create_queue(&sqs, &format!("rebalance-{action}"), None).await;
        let sim = ImdsSim::start("i-0rebalance");
        let wd = Workdir::new();
        let out = wd.path("ran");
        let job = wd.script("job.sh", "cat >> \"$OUT\"; echo >> \"$OUT\"");
        let cfg = wd.config(
            &moto.endpoint,
            &url,
            &[job.to_str().unwrap()],
            &format!("[metadata]\nrebalance = \"{action}\""),
        );
        let mut env = sim.env();
        env.push(("OUT", out.to_str().unwrap().into()));
        env.push(("DRAINERD_FLEET_ENDPOINT_URL", moto.endpoint.clone()));
        let agent = start_agent(&cfg, &env);
        assert!(
            agent
                .wait_log("drainerd ready", Duration::from_secs(15))
                .await,
            "log:\n{}",
            agent.logs()
        );
        sim.call("POST", "/rebalance", "");
        tokio::time::sleep(Duration::from_secs(3)).await;
        send(&sqs, &url, "after").await;
        let ran = line_appears(&out, "after", Duration::from_secs(6)).await;
        let logs = agent.logs();
        match action {
            "drain" => {
                assert!(!ran, "drain: no new work after the recommendation");
                assert!(logs.contains("draining: stopped receiving"), "{logs}");
            }
            _ => {
                assert!(ran, "{action}: work goes on; log:\n{logs}");
                assert!(!logs.contains("draining:"), "{logs}");
                assert_eq!(
                    logs.contains("rebalance recommendation"),
                    action == "log",
                    "{action}: {logs}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_metadata_service_is_survived() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "faults", None).await;
    let sim = ImdsSim::start("i-0faults");
    let wd = Workdir::new();
    let out = wd.path("ran");
    let job = wd.script("job.sh", "cat >> \"$OUT\"; echo >> \"$OUT\"");
    let cfg = wd.config(&moto.endpoint, &url, &[job.to_str().unwrap()], "");
    let mut env = sim.env();
    env.push(("OUT", out.to_str().unwrap().into()));
    env.push(("DRAINERD_FLEET_ENDPOINT_URL", moto.endpoint.clone()));
    let agent = start_agent(&cfg, &env);
    assert!(
        agent
            .wait_log("drainerd ready", Duration::from_secs(15))
            .await,
        "log:\n{}",
        agent.logs()
    );

    let faults = [
        r#"{"latency_ms": 2500}"#,
        r#"{"status": 500}"#,
        r#"{"status": 503}"#,
        r#"{"unauthorized": true}"#,
        r#"{"garbage": true, "path_prefix": "/latest/meta-data/spot"}"#,
        r#"{"reset": true}"#,
    ];
    // A job sent now runs, whatever the metadata service is doing.
    let runs = |body: String, during: &'static str| {
        let (sqs, url, out, agent) = (&sqs, &url, &out, &agent);
        async move {
            send(sqs, url, &body).await;
            let ran = line_appears(out, &body, Duration::from_secs(15)).await;
            assert!(
                ran,
                "job {body} ({during}) did not run; log:\n{}",
                agent.logs()
            );
        }
    };
    let mut n = 0;
    for f in faults {
        sim.call("POST", "/faults", f);
        let fault_start = Instant::now();
        for _ in 0..2 {
            n += 1;
            runs(format!("during-{n}"), f).await;
        }
        // Long enough for several polls (and the client's retries) to see it.
        tokio::time::sleep(Duration::from_secs(5).saturating_sub(fault_start.elapsed())).await;
        sim.call("DELETE", "/faults", "");
    }
    // Gone for 60 s: connections refused.
    sim.call("POST", "/down", r#"{"for":"60s"}"#);
    let gone = Instant::now();
    while gone.elapsed() < Duration::from_secs(60) {
        n += 1;
        runs(format!("gone-{n}"), "metadata gone").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let logs = agent.logs();
    let complaints = logs.matches("instance metadata did not answer").count()
        + logs.matches("answered something unexpected").count();
    // Seven kinds of trouble over about 100 s on four paths: a line per
    // new kind per path, repeats at most once a minute (polling every second
    // would make ~400 lines).
    assert!(complaints >= 8, "problems are logged: {logs}");
    assert!(
        complaints <= 7 * 4 + 8,
        "{complaints} complaint lines: flooding"
    );
    for needle in [
        "HTTP 500",
        "HTTP 503",
        "HTTP 401",
        "read timeout",
        "answered something unexpected",
    ] {
        assert!(logs.contains(needle), "{needle} was logged");
    }

    // And a notice that appears afterwards is still acted on.
    sim.call("POST", "/spot", r#"{"action":"terminate","in":"60s"}"#);
    assert!(
        agent
            .wait_log("spot interruption notice", Duration::from_secs(10))
            .await,
        "log:\n{}",
        agent.logs()
    );
    assert!(agent.logs().contains("draining: stopped receiving"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_url_can_come_from_an_instance_tag() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "tagged", None).await;
    let sim = ImdsSim::start("i-0tagged");
    let wd = Workdir::new();
    let out = wd.path("ran");
    let job = wd.script("job.sh", "cat >> \"$OUT\"; echo >> \"$OUT\"");
    let cfg = wd.config(
        &moto.endpoint,
        "tag:drainerd-queue-url",
        &[job.to_str().unwrap()],
        "",
    );
    let mut env = sim.env();
    env.push(("OUT", out.to_str().unwrap().into()));
    env.push(("DRAINERD_FLEET_ENDPOINT_URL", moto.endpoint.clone()));

    // No such tag (or tags not enabled): a configuration error naming the fix.
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, err) = run_to_exit(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--log-format",
            "text",
        ],
        &refs,
    );
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains("instance tag drainerd-queue-url not found")
            && err.contains("InstanceMetadataTags"),
        "{err}"
    );

    sim.call(
        "POST",
        "/tags",
        &serde_json::json!({ "drainerd-queue-url": url }).to_string(),
    );
    let agent = start_agent(&cfg, &env);
    send(&sqs, &url, "via tag").await;
    let ran = line_appears(&out, "via tag", Duration::from_secs(20)).await;
    assert!(ran, "log:\n{}", agent.logs());
    assert!(agent.logs().contains("queue URL from instance tag"));
}

/// A spot notice that comes while the queue has not answered yet (a slow
/// start) is kept and acted on once it has: the agent never takes work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_during_a_slow_start_is_acted_on_once_the_queue_answers() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "slow-start", None).await;
    let proxy = Proxy::start(moto.port).await;
    proxy.up.store(false, std::sync::atomic::Ordering::SeqCst);
    let sim = ImdsSim::start("i-0slowstart");
    let wd = Workdir::new();
    let out = wd.path("ran");
    let job = wd.script("job.sh", "cat >> \"$OUT\"");
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let cfg = wd.config(&endpoint, &url, &[job.to_str().unwrap()], "");
    let mut env = sim.env();
    env.push(("OUT", out.to_str().unwrap().into()));
    env.push(("DRAINERD_FLEET_ENDPOINT_URL", moto.endpoint.clone()));
    env.push(("DRAINERD_QUEUE_START_TIMEOUT", "2m".into()));
    let agent = start_agent(&cfg, &env);
    assert!(
        agent
            .wait_log("queue not reachable yet", Duration::from_secs(20))
            .await,
        "{}",
        agent.logs()
    );
    sim.call("POST", "/spot", r#"{"action":"terminate","in":"10m"}"#);
    assert!(
        agent
            .wait_log("kept until the queue answers", Duration::from_secs(20))
            .await,
        "{}",
        agent.logs()
    );
    send(&sqs, &url, "must not run").await;
    proxy.up.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        agent
            .wait_log("draining: stopped receiving", Duration::from_secs(30))
            .await,
        "{}",
        agent.logs()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        read_lines(&out).is_empty(),
        "no work taken after the notice"
    );
    assert_eq!(depth(&sqs, &url).await.0, 1, "the message waits for others");
}
