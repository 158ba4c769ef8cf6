//! The status page, `/status.json`, `/metrics`, `/healthz`, `/readyz` and
//! the spawn / leave buttons, against the real binary, moto and the
//! metadata simulator. `/metrics` is read by Prometheus' own text-format
//! parser (prometheus_client, in `.venv`); the page by headless Chromium.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

async fn status_json(port: u16) -> serde_json::Value {
    let (code, h, body) = get(port, "/status.json");
    assert_eq!(code, 200);
    assert_eq!(h["content-type"], "application/json");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_metrics_and_no_requests_per_view() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _dlq) = create_queue(&sqs, "work", Some(3)).await;
    // SQS requests are counted independently of drainerd at this relay.
    let relay = Proxy::start(moto.port).await;
    let wd = Workdir::new();
    let job = wd.script(
        "job.sh",
        "read body; [ \"$body\" = fail ] && exit 3; [ \"$body\" = slow ] && sleep 3; exit 0",
    );
    let cfg = wd.config(
        &format!("http://127.0.0.1:{}", relay.port),
        &url,
        &[job.to_str().unwrap()],
        "concurrency = 2",
    );
    let (agent, port) = start_with_page(
        &cfg,
        vec![
            ("DRAINERD_STATUS_REFRESH_INTERVAL", "60s".into()),
            // The failing job is counted once before it comes back.
            ("DRAINERD_JOB_RETRY_BACKOFF_BASE", "60s".into()),
            ("DRAINERD_JOB_RETRY_BACKOFF_MAX", "120s".into()),
            // An idle agent then makes one receive per 20 s: the relay's
            // count below is quiet enough to see any request a view makes.
            ("DRAINERD_QUEUE_WAIT_TIME", "20s".into()),
        ],
    )
    .await;

    let (code, h, body) = get(port, "/healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    assert!(h["content-type"].starts_with("text/plain"));
    let (code, _, _) = get(port, "/readyz");
    assert_eq!(code, 200);
    let before = parse_metrics(&get(port, "/metrics").2);
    assert_eq!(
        metric(&before, "drainerd_jobs_total{outcome=succeeded}"),
        0.0
    );

    for i in 0..5 {
        send(&sqs, &url, &format!("job {i}")).await;
    }
    send(&sqs, &url, "fail").await;
    let done = eventually(Duration::from_secs(30), || async {
        let s = status_json(port).await;
        // Counted when settled (deletes and hand-backs are batched).
        let settled = s["messages"]["deleted"] == 5 && s["messages"]["released"] == 1;
        (s["jobs"]["succeeded"] == 5 && s["jobs"]["failed"] == 1 && settled).then_some(s)
    })
    .await
    .expect("jobs counted on /status.json");
    assert_eq!(done["agent"]["state"], "running");
    assert_eq!(done["agent"]["slots"], 2);
    assert_eq!(done["queue"]["url"], url.as_str());
    assert_eq!(done["jobs"]["recent"].as_array().unwrap().len(), 6);
    assert!(done["jobs"]["recent"][0]["outcome"].is_string());

    let (code, h, text) = get(port, "/metrics");
    assert_eq!(code, 200);
    assert_eq!(
        h["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let m = parse_metrics(&text);
    assert_eq!(metric(&m, "drainerd_jobs_total{outcome=succeeded}"), 5.0);
    assert_eq!(metric(&m, "drainerd_jobs_total{outcome=failed}"), 1.0);
    assert_eq!(metric(&m, "drainerd_job_duration_seconds_count{}"), 6.0);
    assert_eq!(metric(&m, "drainerd_receive_to_start_seconds_count{}"), 6.0);
    assert_eq!(
        metric(&m, "drainerd_job_duration_seconds_bucket{le=+Inf}"),
        6.0
    );
    assert_eq!(metric(&m, "drainerd_job_slots{}"), 2.0);
    assert_eq!(metric(&m, "drainerd_messages_deleted_total{}"), 5.0);
    assert_eq!(metric(&m, "drainerd_messages_handed_back_total{}"), 1.0);
    assert!(
        metric(
            &m,
            "drainerd_requests_total{api=ReceiveMessage,result=ok,service=sqs}"
        ) >= 1.0
    );
    assert!(metric(&m, "drainerd_idle_seconds{}") >= 0.0);

    // The first view asked for figures; they arrive in the background.
    let figures = eventually(Duration::from_secs(10), || async {
        let s = status_json(port).await;
        s["queue"]["as_of"].is_string().then_some(s)
    })
    .await
    .expect("queue figures read after a view");
    assert!(figures["queue"]["dlq_url"]
        .as_str()
        .unwrap()
        .ends_with("/work-dlq"));
    assert_eq!(figures["queue"]["dlq_visible"], 0);
    let m = parse_metrics(&get(port, "/metrics").2);
    assert_eq!(
        metric(
            &m,
            "drainerd_queue_messages{queue=dead_letter,state=visible}"
        ),
        0.0
    );

    // A page storm within one refresh interval: no SQS request of its own.
    let relayed = relay.connections.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..100 {
        assert_eq!(get(port, "/").0, 200);
        assert_eq!(get(port, "/metrics").0, 200);
    }
    let extra = relay.connections.load(std::sync::atomic::Ordering::SeqCst) - relayed;
    assert!(
        extra <= 1,
        "200 views made {extra} SQS requests (at most the idle long poll expected)"
    );

    let (code, h, page) = get(port, "/");
    assert_eq!(code, 200);
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert!(h["content-security-policy"].contains("default-src 'none'"));
    assert!(page.contains("<b id=succeeded>5</b>"), "{page}");
    assert!(page.contains("Buttons disabled"));

    // Methods and paths.
    assert_eq!(http(port, "POST", "/metrics", &[], "").0, 405);
    assert_eq!(get(port, "/spawn").0, 405);
    assert_eq!(get(port, "/nope").0, 404);
    // Buttons are off without a control token, whatever is sent.
    let (code, _, body) = http(
        port,
        "POST",
        "/spawn",
        &[("Authorization", "Bearer 0123456789abcdef")],
        "",
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("buttons disabled"));

    // Draining: not ready, still healthy.
    send(&sqs, &url, "slow").await;
    eventually(Duration::from_secs(30), || async {
        (status_json(port).await["agent"]["running"] == 1).then_some(())
    })
    .await
    .expect("the slow job runs");
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, _, body) = eventually(Duration::from_secs(10), || async {
        let r = get(port, "/readyz");
        (r.0 == 503).then_some(r)
    })
    .await
    .expect("/readyz turns 503 while draining");
    assert_eq!(code, 503);
    assert!(body.contains("draining"), "{body}");
    assert_eq!(get(port, "/healthz").0, 200);
    assert_eq!(status_json(port).await["agent"]["state"], "draining");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_shows_the_live_numbers() {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
        .expect("chromium is needed for this test (scripts/test installs the Debian package)");
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "work", Some(3)).await;
    let wd = Workdir::new();
    let job = wd.script("job.sh", "cat >/dev/null; exit 0");
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        "concurrency = 3",
    );
    let (_agent, port) = start_with_page(
        &cfg,
        vec![
            ("DRAINERD_STATUS_REFRESH_INTERVAL", "1s".into()),
            (
                "DRAINERD_STATUS_CONTROL_TOKEN",
                "0123456789abcdef-page".into(),
            ),
        ],
    )
    .await;
    for i in 0..7 {
        send(&sqs, &url, &format!("job {i}")).await;
    }
    eventually(Duration::from_secs(30), || async {
        (status_json(port).await["jobs"]["succeeded"] == 7).then_some(())
    })
    .await
    .expect("7 jobs done");
    // Views to have the queue figures read after the drain, then the
    // browser's. The figures are read at most once per refresh interval,
    // so a read made while the last jobs were still in flight can be the
    // cached one: wait until the cache shows the drained queue (it only
    // moves forward in time, and the queue stays empty), never on timing.
    eventually(Duration::from_secs(20), || async {
        let q = &status_json(port).await["queue"];
        (q["visible"] == 0 && q["in_flight"] == 0 && q["dlq_visible"] == 0).then_some(())
    })
    .await
    .expect("figures of the drained queue read");
    // The chart's series holds the jobs (wherever minute boundaries fell)
    // and a reading of the drained queue.
    let hour = eventually(Duration::from_secs(20), || async {
        let s = status_json(port).await;
        let hour = s["last_hour"].as_array().unwrap().clone();
        let read = hour.iter().rev().find(|m| !m["queue_visible"].is_null());
        (series_sum(&hour, "succeeded") == 7 && read.is_some_and(|m| m["queue_visible"] == 0))
            .then_some(hour)
    })
    .await
    .expect("the last hour holds the 7 jobs and the drained queue");
    assert_eq!(series_sum(&hour, "failed"), 0);
    assert_eq!(series_sum(&hour, "handed_back"), 0);
    assert!(hour.len() <= 60);
    assert!(hour.last().unwrap()["minute"]
        .as_str()
        .unwrap()
        .ends_with(":00Z"));

    let artifacts = Path::new(ROOT).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let page = format!("http://127.0.0.1:{port}/");
    let profile = wd.path("chromium-profile");
    let base = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
    ];
    let run = |extra: &[&str]| {
        let out = Command::new(chromium)
            .args(base)
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(&page)
            .output()
            .expect("run chromium");
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&[
        "--window-size=480,1600",
        &format!("--screenshot={}", shot.display()),
    ]);
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 10_000)
            .unwrap_or(false),
        "no screenshot at {}",
        shot.display()
    );
    let dom = run(&["--dump-dom"]);
    assert!(dom.contains("<b id=\"succeeded\">7</b>"), "{dom}");
    assert!(dom.contains("<b id=\"running\">0/3</b>"), "{dom}");
    assert!(dom.contains("<b id=\"queue-visible\">0</b>"), "{dom}");
    assert!(dom.contains("<b id=\"dlq-visible\">0</b>"), "{dom}");
    assert!(dom.contains("action=\"/spawn\""), "{dom}");
    // The chart: a group per counted minute carrying its figures, the
    // jobs all there, the newest queue reading the drained queue.
    std::fs::write(artifacts.join("status-page.html"), &dom).unwrap();
    assert!(dom.contains("<svg class=\"chart\""), "{dom}");
    assert_eq!(dom_sum(&dom, "data-succeeded"), 7, "{dom}");
    assert_eq!(dom_sum(&dom, "data-failed"), 0, "{dom}");
    assert_eq!(dom_sum(&dom, "data-handed-back"), 0, "{dom}");
    assert!(
        dom.contains(" succeeded, 0 failed, 0 handed back</title>"),
        "{dom}"
    );
    let depths = dom_values(&dom, "data-queue-visible");
    assert_eq!(depths.last(), Some(&0), "{dom}");
    // The numbers are live: more jobs, a new page load, new figures.
    for i in 0..3 {
        send(&sqs, &url, &format!("more {i}")).await;
    }
    eventually(Duration::from_secs(30), || async {
        (status_json(port).await["jobs"]["succeeded"] == 10).then_some(())
    })
    .await
    .expect("10 jobs done");
    eventually(Duration::from_secs(20), || async {
        let hour = status_json(port).await["last_hour"]
            .as_array()
            .unwrap()
            .clone();
        (series_sum(&hour, "succeeded") == 10).then_some(())
    })
    .await
    .expect("the last hour holds 10 jobs");
    let dom = run(&["--dump-dom"]);
    assert!(dom.contains("<b id=\"succeeded\">10</b>"), "{dom}");
    assert_eq!(dom_sum(&dom, "data-succeeded"), 10, "{dom}");
}

/// The sum of `field` over `/status.json`'s `last_hour`.
fn series_sum(hour: &[serde_json::Value], field: &str) -> u64 {
    hour.iter().filter_map(|m| m[field].as_u64()).sum()
}

/// Every value of the attribute `name="N"` in a DOM dump, in order.
fn dom_values(dom: &str, name: &str) -> Vec<u64> {
    let key = format!("{name}=\"");
    dom.split(&key)
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].parse().unwrap())
        .collect()
}

fn dom_sum(dom: &str, name: &str) -> u64 {
    dom_values(dom, name).iter().sum()
}

async fn desired(asg: &aws_sdk_autoscaling::Client, group: &str) -> i32 {
    asg.describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .unwrap()
        .auto_scaling_groups()[0]
        .desired_capacity()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_and_leave_buttons() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "work", None).await;
    let asg = asg_client(&moto.endpoint);
    let me = create_group(&asg, &moto.endpoint, "workers", 3).await[0].clone();
    let sim = ImdsSim::start(&me);
    let wd = Workdir::new();
    let marker = wd.path("started");
    let job = wd.script(
        "job.sh",
        &format!(
            "cat >/dev/null; touch {}; sleep 3; exit 0",
            marker.display()
        ),
    );
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        // Only the button may make it leave: a long idle timeout.
        "[fleet]\ncheck_interval = \"1s\"\nidle_timeout = \"1h\"\n",
    );
    let token = "s3cret-token-0123456789";
    let mut env = sim.env();
    env.extend([
        ("DRAINERD_FLEET_ENDPOINT_URL", moto.endpoint.clone()),
        ("DRAINERD_STATUS_CONTROL_TOKEN", token.into()),
        ("DRAINERD_STATUS_ACTIONS_PER_MINUTE", "100".into()),
    ]);
    let (mut agent, port) = start_with_page(&cfg, env).await;
    assert!(
        agent
            .wait_log("fleet logic on", Duration::from_secs(20))
            .await
    );
    let bearer = format!("Bearer {token}");

    // Refusals change nothing.
    let (code, _, body) = http(port, "POST", "/spawn", &[], "");
    assert_eq!(code, 403, "{body}");
    let (code, _, _) = http(
        port,
        "POST",
        "/spawn",
        &[("Authorization", "Bearer wrong-token-0123456789")],
        "",
    );
    assert_eq!(code, 403);
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let (code, _, _) = http(port, "POST", "/spawn", &[form], "token=wrong");
    assert_eq!(code, 403);
    // A form on another site posting the right token (a cross-site request).
    let (code, _, body) = http(
        port,
        "POST",
        "/spawn",
        &[form, ("Origin", "http://evil.example")],
        &format!("token={token}"),
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("cross-origin"));
    let (code, _, _) = http(
        port,
        "POST",
        "/spawn",
        &[("Authorization", &bearer), ("Sec-Fetch-Site", "cross-site")],
        "",
    );
    assert_eq!(code, 403);
    assert_eq!(desired(&asg, "workers").await, 3);

    // Spawn: +1, up to MaxSize (5) and not beyond.
    let (code, _, body) = http(port, "POST", "/spawn", &[("Authorization", &bearer)], "");
    assert_eq!(code, 200, "{body}");
    assert_eq!(desired(&asg, "workers").await, 4);
    // The page's own form: token as a field, same origin.
    let (code, h, body) = http(
        port,
        "POST",
        "/spawn",
        &[form, ("Origin", &format!("http://127.0.0.1:{port}"))],
        &format!("token={token}"),
    );
    assert_eq!(code, 200, "{body}");
    assert!(h["content-type"].starts_with("text/html"));
    assert_eq!(desired(&asg, "workers").await, 5);
    let (code, _, body) = http(port, "POST", "/spawn", &[("X-Drainerd-Token", token)], "");
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("MaxSize"));
    assert_eq!(desired(&asg, "workers").await, 5);

    // Leave while a job runs: the job finishes and its message is deleted,
    // then the instance leaves with decrement.
    send(&sqs, &url, "last job").await;
    assert!(eventually(Duration::from_secs(20), || async {
        marker.exists().then_some(())
    })
    .await
    .is_some());
    let (code, _, body) = http(port, "POST", "/leave", &[("Authorization", &bearer)], "");
    assert_eq!(code, 202, "{body}");
    assert!(
        agent
            .wait_log(
                "TerminateInstanceInAutoScalingGroup accepted",
                Duration::from_secs(30)
            )
            .await,
        "{}",
        agent.logs()
    );
    assert_eq!(desired(&asg, "workers").await, 4);
    assert_eq!(
        depth(&sqs, &url).await,
        (0, 0),
        "the running job's message was deleted"
    );
    let logs = agent.logs();
    assert!(logs.contains("job finished"), "{logs}");
    let job_done = logs.find("job finished").unwrap();
    let left = logs
        .find("TerminateInstanceInAutoScalingGroup accepted")
        .unwrap();
    assert!(
        job_done < left,
        "left before the running job finished:\n{logs}"
    );
    assert_eq!(ec2_state(&moto.endpoint, &me), "terminated");
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(agent.wait_exit(Duration::from_secs(30)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_button_refuses_at_min_size() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "work", None).await;
    let asg = asg_client(&moto.endpoint);
    // A group of 1 with MinSize 1.
    let me = create_group(&asg, &moto.endpoint, "solo", 1).await[0].clone();
    let sim = ImdsSim::start(&me);
    let wd = Workdir::new();
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &["/bin/true"],
        "[fleet]\nidle_timeout = \"1h\"\n",
    );
    let token = "s3cret-token-0123456789";
    let mut env = sim.env();
    env.extend([
        ("DRAINERD_FLEET_ENDPOINT_URL", moto.endpoint.clone()),
        ("DRAINERD_STATUS_CONTROL_TOKEN", token.into()),
        ("DRAINERD_STATUS_ACTIONS_PER_MINUTE", "2".into()),
    ]);
    let (_agent, port) = start_with_page(&cfg, env).await;
    let bearer = format!("Bearer {token}");
    let (code, _, body) = http(port, "POST", "/leave", &[("Authorization", &bearer)], "");
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("MinSize"));
    assert_eq!(desired(&asg, "solo").await, 1);
    // The rate limit: 2 per minute, the third press is turned away.
    let _ = http(port, "POST", "/leave", &[("Authorization", &bearer)], "");
    let (code, h, _) = http(port, "POST", "/leave", &[("Authorization", &bearer)], "");
    assert_eq!(code, 429);
    assert!(h.contains_key("retry-after"));
    assert_eq!(get(port, "/readyz").0, 200, "still working");
}
