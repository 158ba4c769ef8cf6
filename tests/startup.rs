//! Start-up and the edges: bad configuration, a missing queue, an SQS
//! outage, and systemd's notify socket.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use nix::sys::signal::Signal;
use support::*;

fn check(wd: &Workdir, toml: &str) -> (Option<i32>, String) {
    let p = wd.write("bad.toml", toml);
    run_to_exit(&["check-config", "--config", p.to_str().unwrap()], &[])
}

#[test]
fn bad_configuration_exits_78_naming_the_field() {
    let wd = Workdir::new();
    let ok_queue = "[queue]\nurl = \"http://127.0.0.1:1/123/q\"\n";
    let cases = [
        (
            format!("{ok_queue}[job]\ncommand = []\n"),
            "job.command is empty",
        ),
        (
            format!("{ok_queue}wait_time = 30\n[job]\ncommand = [\"/bin/true\"]\n"),
            "queue.wait_time",
        ),
        (
            format!("{ok_queue}[job]\ncommand = [\"/bin/true\"]\nconcurrancy = 4\n"),
            "unknown field `concurrancy`",
        ),
        ("[queue\nurl = ".to_string(), "not valid TOML"),
    ];
    for (toml, needle) in cases {
        let (code, err) = check(&wd, &toml);
        assert_eq!(code, Some(78), "{toml}\n{err}");
        assert!(err.contains(needle), "expected {needle:?} in: {err}");
        // `run` refuses the same file the same way.
        let p = wd.path("bad.toml");
        let (code, err2) = run_to_exit(&["run", "--config", p.to_str().unwrap()], &[]);
        assert_eq!(code, Some(78));
        assert!(err2.contains(needle));
    }
    let (code, err) = run_to_exit(
        &["check-config", "--config", "/nonexistent/drainerd.toml"],
        &[],
    );
    assert_eq!(code, Some(78));
    assert!(err.contains("/nonexistent/drainerd.toml"), "{err}");
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_redacted() {
    let wd = Workdir::new();
    let p = wd.write(
        "ok.toml",
        "[queue]\nurl = \"http://127.0.0.1:1/123/q\"\n[job]\ncommand = [\"/bin/true\"]\n[job.env]\nAPI_TOKEN = \"hunter2\"\n",
    );
    let out = support::drainerd_cmd()
        .args(["check-config", "--config", p.to_str().unwrap()])
        .env("DRAINERD_JOB_CONCURRENCY", "7")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("concurrency = 7"), "{text}");
    assert!(
        text.contains("lease = \"1m\""),
        "defaults are shown: {text}"
    );
    assert!(
        !text.contains("hunter2") && text.contains("<redacted>"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_queue_exits_69_naming_the_url() {
    let moto = Moto::start();
    let wd = Workdir::new();
    let url = format!("{}/123456789012/no-such-queue", moto.endpoint);
    let cfg = wd.config(&moto.endpoint, &url, &["/bin/true"], "");
    let (code, err) = run_to_exit(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--log-format",
            "text",
        ],
        &[],
    );
    assert_eq!(code, Some(69), "{err}");
    assert!(err.contains(&url), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqs_outage_is_survived_without_a_hot_loop() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "outage", None).await;
    let proxy = Proxy::start(moto.port).await;
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let wd = Workdir::new();
    let out = wd.path("ran");
    let job = wd.script("job.sh", "cat >> \"$OUT\"; echo >> \"$OUT\"");
    let cfg = wd.config(&endpoint, &url, &[job.to_str().unwrap()], "");
    let agent = Agent::start(&cfg, &[("OUT", out.to_str().unwrap())]);
    assert!(
        agent
            .wait_log("drainerd ready", Duration::from_secs(10))
            .await
    );

    proxy.up.store(false, Ordering::SeqCst);
    let before = proxy.connections.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = proxy.connections.load(Ordering::SeqCst) - before;
    proxy.up.store(true, Ordering::SeqCst);
    println!("connection attempts during a 10 s outage: {during}");
    // Backoff (1 s doubling, jitter) with the SDK's own 3 attempts per call:
    // a couple of dozen at most; a hot loop would make thousands.
    assert!(
        during <= 30,
        "{during} connection attempts in 10 s: hot loop"
    );
    assert!(agent.logs().contains("cannot receive from SQS"));
    let warnings = agent.logs().matches("cannot receive from SQS").count();
    assert!(
        warnings <= 3,
        "each distinct failure logged once per period, saw {warnings}"
    );

    send(&sqs, &url, "after the outage").await;
    let ran = line_appears(&out, "after the outage", Duration::from_secs(40)).await;
    assert!(ran, "agent did not recover; log:\n{}", agent.logs());
    assert!(agent.logs().contains("SQS reachable again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_status_watchdog_and_stopping_in_order() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "notify", None).await;
    let wd = Workdir::new();
    let mut notify = NotifySocket::bind(&wd);
    let job = wd.script("job.sh", "cat >/dev/null");
    let cfg = wd.config(&moto.endpoint, &url, &[job.to_str().unwrap()], "");
    send(&sqs, &url, "one").await;
    let mut agent = Agent::start(
        &cfg,
        &[
            ("NOTIFY_SOCKET", notify.path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let start = std::time::Instant::now();
    let mut termed = false;
    while start.elapsed() < Duration::from_secs(20) {
        notify.poll();
        let watchdogs = notify
            .messages
            .iter()
            .filter(|m| m.contains("WATCHDOG=1"))
            .count();
        if !termed && watchdogs >= 3 && notify.saw("1 done") {
            agent.signal(Signal::SIGTERM);
            termed = true;
        }
        if notify.saw("STOPPING=1") && agent.child.try_wait().unwrap().is_some() {
            break;
        }
    }
    let messages = notify.messages;
    eprintln!("notify messages: {messages:?}");
    let pos = |needle: &str| messages.iter().position(|m| m.contains(needle));
    let ready = pos("READY=1").expect("READY=1 sent");
    let status = pos("STATUS=").expect("STATUS= sent");
    let stopping = pos("STOPPING=1").expect("STOPPING=1 sent");
    assert!(ready <= status && status < stopping, "order: {messages:?}");
    assert!(
        pos("WATCHDOG=1").is_some(),
        "watchdog pings with WATCHDOG_USEC set"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("STATUS=0/4 jobs · 1 done")),
        "{messages:?}"
    );
    assert_eq!(agent.wait_exit(Duration::from_secs(10)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_an_idle_agent_ends_after_the_current_long_poll() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "idle", None).await;
    let proxy = Proxy::start(moto.port).await;
    let wd = Workdir::new();
    let cfg = wd.config(
        &format!("http://127.0.0.1:{}", proxy.port),
        &url,
        &["/bin/true"],
        "",
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("wait_time = \"1s\"", "wait_time = \"3s\"");
    std::fs::write(&cfg, text).unwrap();
    let mut agent = Agent::start(&cfg, &[]);
    assert!(
        agent
            .wait_log("drainerd ready", Duration::from_secs(10))
            .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = proxy.connections.load(Ordering::SeqCst);
    agent.signal(Signal::SIGTERM);
    let start = std::time::Instant::now();
    assert_eq!(agent.wait_exit(Duration::from_secs(10)), Some(0));
    let after = proxy.connections.load(Ordering::SeqCst) - before;
    // The receive in flight finishes (at most one long poll); no new one starts.
    assert_eq!(after, 0, "a receive was started after SIGTERM");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn values_out_of_range_exit_78_naming_the_field_and_the_range() {
    // issue 21: each of these passed check-config before.
    let wd = Workdir::new();
    let base = "[queue]\nurl = \"http://127.0.0.1:1/123/q\"\n";
    for (section, line, field, range) in [
        (
            "queue",
            "wait_time = \"0s\"",
            "queue.wait_time",
            "between 1s and 20s",
        ),
        (
            "agent",
            "drain_timeout = \"9999999999h\"",
            "agent.drain_timeout",
            "between 0s and 12h",
        ),
        (
            "job",
            "retry_backoff_max = \"500ms\"",
            "job.retry_backoff_max",
            "between 1s and 12h",
        ),
        (
            "fleet",
            "check_interval = \"9999999999h\"",
            "fleet.check_interval",
            "between 1s and 1h",
        ),
        (
            "metadata",
            "maintenance_lead = \"9999999999h\"",
            "metadata.maintenance_lead",
            "between 0s and 30days",
        ),
        (
            "job",
            "log_line_max = 99999999999",
            "job.log_line_max",
            "between 80 and 1048576",
        ),
    ] {
        let job = "[job]\ncommand = [\"/bin/true\"]\n";
        let toml = match section {
            "queue" => format!("{base}{line}\n{job}"),
            "job" => format!("{base}{job}{line}\n"),
            _ => format!("{base}{job}[{section}]\n{line}\n"),
        };
        let (code, err) = check(&wd, &toml);
        assert_eq!(code, Some(78), "{toml}\n{err}");
        assert!(
            err.contains(field) && err.contains(range),
            "expected {field} and {range:?} in: {err}"
        );
    }
}

#[test]
fn a_stray_drainerd_variable_is_a_warning_naming_the_nearest_one() {
    // issue 21: a wrapper's own DRAINERD_CMD made drainerd exit 78.
    let wd = Workdir::new();
    let p = wd.write(
        "ok.toml",
        "[queue]\nurl = \"http://127.0.0.1:1/123/q\"\n[job]\ncommand = [\"/bin/true\"]\n",
    );
    let (code, err) = run_to_exit(
        &["check-config", "--config", p.to_str().unwrap()],
        &[("DRAINERD_CMD", "/usr/local/bin/wrapper")],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning")
            && err.contains("DRAINERD_CMD")
            && err.contains("DRAINERD_JOB_COMMAND"),
        "{err}"
    );
    // The file stays strict.
    let (code, _) = check(
        &wd,
        "[queue]\nurl = \"http://127.0.0.1:1/123/q\"\ncmd = 1\n[job]\ncommand = [\"/bin/true\"]\n",
    );
    assert_eq!(code, Some(78));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_starts_with_a_stray_variable_and_warns_in_its_log() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "stray", None).await;
    let wd = Workdir::new();
    let cfg = wd.config(&moto.endpoint, &url, &["/bin/true"], "");
    let agent = Agent::start(&cfg, &[("DRAINERD_CMD", "/usr/local/bin/wrapper")]);
    assert!(
        agent
            .wait_log("drainerd ready", Duration::from_secs(20))
            .await,
        "{}",
        agent.logs()
    );
    let logs = agent.logs();
    assert!(
        logs.contains("DRAINERD_CMD is not a drainerd setting")
            && logs.contains("DRAINERD_JOB_COMMAND"),
        "{logs}"
    );
}

#[test]
fn check_config_never_shows_a_secret() {
    let wd = Workdir::new();
    let ok = "[queue]\nurl = \"http://127.0.0.1:1/123/q\"\n[job]\ncommand = [\"/bin/true\"]\n[job.secret_env]\nDB_PASSWORD = \"pw-secret-0123456789\"\n[status]\ncontrol_token = \"tok-secret-0123456789\"\n";
    // Refusals do not quote a token either: a short one, one of the wrong
    // type, a missing quote on its line.
    let token_only = ok.replace(
        "[job.secret_env]\nDB_PASSWORD = \"pw-secret-0123456789\"\n",
        "",
    );
    for bad in [
        token_only.replace("tok-secret-0123456789", "tok-secret"),
        token_only.replace("\"tok-secret-0123456789\"", "123456789012345678901"),
        token_only.replace("tok-secret-0123456789\"", "tok-secret-0123456789"),
    ] {
        let (code, err) = check(&wd, &bad);
        assert_eq!(code, Some(78), "{err}");
        assert!(
            !err.contains("secret") && !err.contains("12345678901"),
            "{err}"
        );
    }
    let p = wd.write("ok.toml", ok);
    let out = support::drainerd_cmd()
        .args(["check-config", "--config", p.to_str().unwrap()])
        .env("DRAINERD_JOB_SECRET_ENV_API_KEY", "key-secret-0123456789")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("DB_PASSWORD = \"<redacted>\""), "{text}");
    assert!(text.contains("API_KEY = \"<redacted>\""), "{text}");
    for secret in ["pw-secret", "tok-secret", "key-secret"] {
        assert!(!text.contains(secret), "{secret} shown:\n{text}");
    }
}
