//! Odd and hostile input against the real binary (issue 21): secrets in
//! the log after a reload, the status page under abuse (other host names,
//! wrong tokens, slow bodies, a slow-client flood), instance metadata that
//! tries to write systemd assignments, and jobs run as another user.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::*;

const TOKEN_A: &str = "first-secret-0123456789abcdef";
const TOKEN_B: &str = "second-secret-fedcba9876543210";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_changes_the_token_never_logs_it() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "reload", None).await;
    let wd = Workdir::new();
    let status = |token: &str, refresh: &str| {
        format!("[status]\ncontrol_token = \"{token}\"\nrefresh_interval = \"{refresh}\"\n")
    };
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &["/bin/true"],
        &status(TOKEN_A, "15s"),
    );
    let agent = Agent::start(&cfg, &[]);
    assert!(
        agent
            .wait_log("drainerd ready", Duration::from_secs(20))
            .await
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&status(TOKEN_A, "15s"), &status(TOKEN_B, "30s"));
    std::fs::write(&cfg, text).unwrap();
    agent.signal(Signal::SIGHUP);
    assert!(
        agent
            .wait_log("configuration reloaded", Duration::from_secs(10))
            .await,
        "{}",
        agent.logs()
    );
    let logs = agent.logs();
    for secret in [TOKEN_A, TOKEN_B] {
        assert!(!logs.contains(secret), "{secret} in the log:\n{logs}");
    }
    assert!(
        logs.contains("status.control_token"),
        "the changed field is named: {logs}"
    );
    assert!(logs.contains("status.refresh_interval"), "{logs}");
}

/// A request with a `Host` header of our choosing: (status, body).
fn with_host(port: u16, host: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_refuses_other_hosts_keeps_secrets_and_checks_the_token_first() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "page", None).await;
    let wd = Workdir::new();
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &["/bin/true"],
        "[job.env]\nDB_HOST = \"db.internal\"\n",
    );
    let (agent, port) = start_with_page(
        &cfg,
        vec![
            ("DRAINERD_STATUS_CONTROL_TOKEN", TOKEN_A.into()),
            ("DRAINERD_STATUS_ACTIONS_PER_MINUTE", "1".into()),
        ],
    )
    .await;

    // DNS rebinding: a page on evil.example whose name now resolves to
    // 127.0.0.1 sends its own host name.
    for path in ["/status.json", "/", "/metrics", "/healthz"] {
        let (code, body) = with_host(port, &format!("evil.example:{port}"), path);
        assert_eq!(code, 403, "{path}: {body}");
        assert!(body.contains("status.allowed_hosts"), "{body}");
    }
    // An operator's SSH tunnel to another local port still works.
    assert_eq!(with_host(port, "localhost:8080", "/status.json").0, 200);
    assert_eq!(with_host(port, &format!("127.0.0.1:{port}"), "/").0, 200);

    // No secret on any page.
    for path in ["/status.json", "/", "/metrics"] {
        let (code, _, body) = get(port, path);
        assert_eq!(code, 200);
        for secret in [TOKEN_A, "db.internal"] {
            assert!(!body.contains(secret), "{secret} on {path}");
        }
    }

    // Wrong tokens never spend the (one press a minute) rate limit.
    for _ in 0..5 {
        let (code, _, body) = http(
            port,
            "POST",
            "/spawn",
            &[("Authorization", "Bearer wrong-token-0123456789abc")],
            "",
        );
        assert_eq!(code, 403, "{body}");
    }
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let (code, _, _) = http(port, "POST", "/spawn", &[form], "token=wrong");
    assert_eq!(code, 403);
    let bearer = format!("Bearer {TOKEN_A}");
    let (code, _, body) = http(port, "POST", "/spawn", &[("Authorization", &bearer)], "");
    // Not in a group: the press is accepted and refused by the fleet
    // logic (409), not by the rate limit (429).
    assert_eq!(code, 409, "{body}");
    let (code, _, _) = http(port, "POST", "/spawn", &[("Authorization", &bearer)], "");
    assert_eq!(
        code, 429,
        "the rate limit still holds for the token's owner"
    );

    // A body that never finishes is given up on.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        s,
        "POST /leave HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ntoken="
    )
    .unwrap();
    let start = Instant::now();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(
        out.starts_with("HTTP/1.1 408"),
        "a stalled body is answered 408, got {out:?} after {:?}",
        start.elapsed()
    );
    let m = parse_metrics(&get(port, "/metrics").2);
    assert!(metric(&m, "drainerd_status_refusals_total{reason=host}") >= 4.0);
    assert!(metric(&m, "drainerd_status_refusals_total{reason=token}") >= 6.0);
    drop(agent);
}

/// One slow client, until `until`: connects, sends a button's headers
/// and then its body a byte every 200 ms (or, with `slow_headers`, its
/// headers a byte every 200 ms), and connects again whenever the server
/// answers or hangs up. Returns how many connections it made.
async fn slow_client(port: u16, until: Instant, slow_headers: bool, source: u8) -> u64 {
    use tokio::io::AsyncWriteExt;
    let head = format!(
        "POST /leave HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 4000\r\n\r\n"
    );
    let mut connections = 0;
    while Instant::now() < until {
        let connect = async {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(([127, 0, 0, source], 0).into())?;
            sock.connect(([127, 0, 0, 1], port).into()).await
        };
        let Ok(mut s) = connect.await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        connections += 1;
        let mut trickle: Vec<u8> = if slow_headers {
            head.clone().into_bytes()
        } else {
            if s.write_all(head.as_bytes()).await.is_err() {
                continue;
            }
            Vec::new()
        };
        trickle.reverse();
        while Instant::now() < until {
            let byte = trickle.pop().unwrap_or(b'a');
            if s.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            // An answer or a hang-up ends this connection.
            let mut buf = [0u8; 512];
            match s.try_read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                _ => break,
            }
        }
    }
    connections
}

/// `/healthz` under a flood of 300 slow clients (more than the page's
/// 256 connections), each sending a button's body a byte at a time (or,
/// with `slow_headers`, its headers): p99 within 100 ms throughout.
///
/// Conditions, chosen to be generous on a shared 2-core machine: one
/// probe every 50 ms for 12 s (about 240 samples, so p99 allows two slow
/// ones), each on a fresh connection from a thread of its own, timed from
/// connect to the whole answer. The flood runs on the test's two runtime
/// threads; the agent is the debug build under test. The flood connects
/// from 127.0.0.2-9 and the probes from 127.0.0.1, as an attacker's
/// connections come from its own addresses: at the cap each new
/// connection closes the oldest and its client reconnects at once, and
/// from one shared address those thousands of connections (each leaving
/// a TIME_WAIT) could exhaust the probes' ephemeral ports, a limit of this
/// test's host, not of the page.
async fn healthz_under_a_flood(slow_headers: bool) {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "flood", None).await;
    let wd = Workdir::new();
    let cfg = wd.config(&moto.endpoint, &url, &["/bin/true"], "");
    let (agent, port) = start_with_page(
        &cfg,
        vec![("DRAINERD_STATUS_CONTROL_TOKEN", TOKEN_A.into())],
    )
    .await;
    let until = Instant::now() + Duration::from_secs(14);
    let flood: Vec<_> = (0..300)
        .map(|i| {
            let source = 2 + (i % 8) as u8;
            tokio::spawn(slow_client(port, until, slow_headers, source))
        })
        .collect();
    // Let the flood fill the page's connections first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let probes = std::thread::spawn(move || {
        let mut samples = Vec::new();
        let end = Instant::now() + Duration::from_secs(12);
        while Instant::now() < end {
            let t = Instant::now();
            let ok = (|| -> std::io::Result<bool> {
                let mut s = TcpStream::connect(("127.0.0.1", port))?;
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                write!(
                    s,
                    "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
                )?;
                let mut out = String::new();
                s.read_to_string(&mut out)?;
                Ok(out.starts_with("HTTP/1.1 200"))
            })();
            samples.push((t.elapsed(), matches!(ok, Ok(true))));
            std::thread::sleep(Duration::from_millis(50));
        }
        samples
    });
    let samples = tokio::task::spawn_blocking(move || probes.join().unwrap())
        .await
        .unwrap();
    let mut connections = 0;
    for f in flood {
        connections += f.await.unwrap();
    }
    let failed = samples.iter().filter(|(_, ok)| !ok).count();
    let mut times: Vec<Duration> = samples.iter().map(|(d, _)| *d).collect();
    times.sort();
    let p = |q: f64| times[((times.len() as f64 * q).ceil() as usize).min(times.len()) - 1];
    println!(
        "{} probes under a flood of {connections} slow connections: p50 {:?}, p99 {:?}, max {:?}, failed {failed}",
        times.len(),
        p(0.5),
        p(0.99),
        times[times.len() - 1]
    );
    assert!(times.len() >= 100, "too few probes: {}", times.len());
    assert_eq!(failed, 0, "/healthz failed during the flood");
    assert!(
        p(0.99) <= Duration::from_millis(100),
        "p99 {:?} over 100 ms",
        p(0.99)
    );
    if !slow_headers {
        let m = parse_metrics(&get(port, "/metrics").2);
        assert!(
            metric(&m, "drainerd_status_refusals_total{reason=body}") >= 1.0,
            "slow bodies were given up on"
        );
    }
    drop(agent);
}

/// Issue 21's flood: bodies a byte at a time. (Before, a press without a
/// token was turned away by the rate limit before its body was read, so
/// this did not stop `/healthz`; the body is now read first, within
/// bounds, and this guards that.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_within_100ms_at_p99_under_a_slow_body_flood() {
    healthz_under_a_flood(false).await;
}

/// Headers a byte at a time: before, 256 such clients held every
/// connection for the 10 s header timeout and `/healthz` waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_within_100ms_at_p99_under_a_slow_header_flood() {
    healthz_under_a_flood(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_text_cannot_add_systemd_assignments() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "notify", None).await;
    let sim = ImdsSim::start("i-0hostile");
    let wd = Workdir::new();
    let mut notify = NotifySocket::bind(&wd);
    let cfg = wd.config(&moto.endpoint, &url, &["/bin/true"], "");
    let mut env = sim.env();
    env.push(("DRAINERD_FLEET_ENDPOINT_URL", moto.endpoint.clone()));
    env.push(("NOTIFY_SOCKET", notify.path.to_str().unwrap().into()));
    let agent = start_agent(&cfg, &env);
    assert!(
        agent
            .wait_log("drainerd ready", Duration::from_secs(20))
            .await
    );
    // (Posted once the queue has answered: the supervisor ignores notices
    // before that.)
    sim.call(
        "POST",
        "/maintenance",
        r#"[{"Code":"system-reboot\nX_INJECTED=1\nSTOPPING=1","Description":"d","EventId":"instance-event-1","NotBefore":"21 Jan 2099 09:00:43 GMT","State":"active"}]"#,
    );
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) && !notify.saw("maintenance system-reboot") {
        notify.poll();
    }
    let messages = notify.messages.clone();
    assert!(
        notify.saw("maintenance system-reboot"),
        "the notice reaches the status line: {messages:?}\n{}",
        agent.logs()
    );
    for m in &messages {
        for line in m.lines() {
            assert!(
                ["READY=", "STATUS=", "WATCHDOG=", "STOPPING="]
                    .iter()
                    .any(|k| line.starts_with(k)),
                "an injected assignment {line:?} in {m:?}"
            );
            assert_ne!(line, "STOPPING=1", "no stop was asked for: {m:?}");
        }
    }
}

/// The job's view of itself, written where the test can read it.
const WHOAMI: &str = r#"body=$(cat)
out="$OUT/$body"
{
  echo "uid $(id -u)"
  echo "gid $(id -g)"
  echo "groups $(id -G)"
  grep -E '^Cap(Inh|Prm|Eff|Amb)' /proc/self/status
  if cat "$CFG" >/dev/null 2>&1; then echo "config readable"; else echo "config unreadable"; fi
  if kill -0 "$PPID" 2>/dev/null; then echo "agent signalable"; else echo "agent not signalable"; fi
  echo "home $HOME user $USER"
  echo "secret ${DB_PASSWORD:-unset}"
} > "$out.tmp" && mv "$out.tmp" "$out"
[ "$body" = slow ] && exec sleep 3131
exit 0"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_as_another_user_without_the_agents_rights() {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: needs root to start the agent as another user");
        return;
    }
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "as-user", None).await;
    let wd = Workdir::new();
    let mode = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    mode(wd.dir.path(), 0o755);
    let out = wd.path("out");
    std::fs::create_dir(&out).unwrap();
    mode(&out, 0o777);
    let job = wd.script("whoami.sh", WHOAMI);
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        "user = \"nobody\"\ntimeout = \"3s\"\n[job.secret_env]\nDB_PASSWORD = \"hunter2-hunter2\"\n",
    );
    // The configuration as the package leaves it: readable by the agent's
    // group only.
    let daemon = nix::unistd::Group::from_name("daemon").unwrap().unwrap();
    nix::unistd::chown(&cfg, Some(nix::unistd::Uid::from_raw(0)), Some(daemon.gid)).unwrap();
    mode(&cfg, 0o640);
    let log = wd.path("drainerd.log");
    let launch = |caps: &str| {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=daemon", "--regid=daemon", "--init-groups"]);
        if !caps.is_empty() {
            // As the unit drop-in grants them (systemd/job-user.conf).
            cmd.arg(format!("--inh-caps={caps}"))
                .arg(format!("--ambient-caps={caps}"));
        }
        cmd.arg(env!("CARGO_BIN_EXE_drainerd"))
            .args([
                "run",
                "--config",
                cfg.to_str().unwrap(),
                "--log-format",
                "text",
            ])
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("DRAINERD_METADATA_ENABLED", "false")
            .env("DRAINERD_STATUS_ENABLED", "false")
            .env("OUT", &out)
            .env("CFG", &cfg)
            .env_remove("NOTIFY_SOCKET")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        cmd.spawn().unwrap()
    };

    // Without the capabilities: a configuration error naming them.
    let mut child = launch("");
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(78), "{text}");
    assert!(
        text.contains("CAP_SETUID") && text.contains("job-user.conf"),
        "{text}"
    );

    // The capabilities the unit drop-in grants, as setpriv takes them.
    let dropin =
        std::fs::read_to_string(std::path::Path::new(ROOT).join("systemd/job-user.conf")).unwrap();
    let caps: Vec<String> = dropin
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .unwrap()
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_ascii_lowercase()))
        .collect();
    let mut child = launch(&caps.join(","));
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let ready = eventually(Duration::from_secs(20), || async {
        logs().contains("drainerd ready").then_some(())
    })
    .await;
    assert!(ready.is_some(), "{}", logs());
    send(&sqs, &url, "fast").await;
    let report = out.join("fast");
    let seen = eventually(Duration::from_secs(20), || async {
        std::fs::read_to_string(&report).ok()
    })
    .await
    .unwrap_or_else(|| panic!("the job did not run:\n{}", logs()));
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert!(seen.contains(&format!("uid {}\n", nobody.uid)), "{seen}");
    assert!(seen.contains(&format!("gid {}\n", nobody.gid)), "{seen}");
    assert!(
        seen.contains(&format!("groups {}\n", nobody.gid)),
        "no supplementary group (not the agent's): {seen}"
    );
    for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert!(
            seen.contains(&format!("{set}:\t0000000000000000")),
            "{set} not empty: {seen}"
        );
    }
    assert!(seen.contains("config unreadable"), "{seen}");
    assert!(seen.contains("agent not signalable"), "{seen}");
    assert!(seen.contains("home /nonexistent user nobody"), "{seen}");
    assert!(
        seen.contains("secret hunter2-hunter2"),
        "the job gets its secrets: {seen}"
    );

    // The agent can still stop a job of the other user at its timeout
    // (3 s; CAP_KILL lets it signal the job's process group).
    send(&sqs, &url, "slow").await;
    let stopped = eventually(Duration::from_secs(30), || async {
        logs().contains("timed_out").then_some(())
    })
    .await;
    assert!(stopped.is_some(), "{}", logs());
    assert!(out.join("slow").exists());
    let left = std::process::Command::new("pgrep")
        .args(["-f", "sleep 3131"])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "the job's process outlived its timeout: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", logs());
}
