//! The systemd watchdog under a black-holed network, without systemd: the
//! test is systemd's side of `NOTIFY_SOCKET` with `WATCHDOG_USEC=2000000`.
//! systemd restarts a unit whose pings stop for the watchdog period (2 s
//! here). A healthy agent whose every AWS call hangs must keep pinging (it
//! is not wedged: restarting it would only cut its jobs short); a wedged
//! one (SIGSTOP stands in for a drain loop that cannot run) must not.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{recorder_config, seen, send_many, tail};
use crate::support::*;

/// Every `WATCHDOG=1` that arrives within `period`, stamped on arrival.
fn pings_during(notify: &mut NotifySocket, period: Duration) -> Vec<Instant> {
    let mut at = Vec::new();
    let start = Instant::now();
    while start.elapsed() < period {
        let before = notify.messages.len();
        notify.poll();
        for m in &notify.messages[before..] {
            if m.contains("WATCHDOG=1") {
                at.push(Instant::now());
            }
        }
    }
    at
}

fn largest_gap(start: Instant, pings: &[Instant], end: Instant) -> Duration {
    let mut t = vec![start];
    t.extend_from_slice(pings);
    t.push(end);
    t.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_pings_go_on_under_a_black_holed_network_and_stop_when_wedged() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "watchdog", None).await;
    let asg = asg_client(&moto.endpoint);
    let me = create_group(&asg, &moto.endpoint, "watched", 2).await[0].clone();
    let sim = ImdsSim::start(&me);
    let proxy = FaultProxy::start(moto.port);
    let wd = Workdir::new();
    let mut notify = NotifySocket::bind(&wd);
    let (cfg, out) = recorder_config(
        &wd,
        &proxy.endpoint,
        &url,
        "30s",
        "10s",
        "concurrency = 4\n[fleet]\ncheck_interval = \"1s\"\nbilling = \"never\"\nprotection_linger = \"1s\"",
    );
    send_many(&sqs, &url, "job", 40).await;
    let mut env = sim.env();
    env.push(("OUT", out.to_str().unwrap().into()));
    env.push(("SLEEP", "0.5".into()));
    env.push(("DRAINERD_FLEET_ENDPOINT_URL", proxy.endpoint.clone()));
    env.push(("NOTIFY_SOCKET", notify.path.to_str().unwrap().into()));
    env.push(("WATCHDOG_USEC", "2000000".into()));
    let agent = start_agent(&cfg, &env);
    let working = eventually(Duration::from_secs(30), || async {
        (read_lines(&out).len() >= 4).then_some(())
    })
    .await;
    assert!(
        working.is_some(),
        "log (last lines; all of it below):\n{}",
        tail(&agent.logs())
    );

    // The network dies: every SQS and Auto Scaling request from now on is
    // read and never answered, with jobs running, deletes due, leases to
    // renew and protection to change.
    proxy.add(Rule::new(Fault::BlackHoleBefore, Share::Every(1)));
    let start = Instant::now();
    let period = Duration::from_secs(10);
    let pings = pings_during(&mut notify, period);
    let gap = largest_gap(start, &pings, start + period);
    // Every second (half the watchdog period), with half a second of
    // scheduling slack on a busy machine: well inside the 2 s systemd acts on.
    assert!(
        gap <= Duration::from_millis(1500) && pings.len() >= 8,
        "{} pings in {period:?} of black-holed network, largest gap {gap:?}: systemd would restart a healthy agent; {}\nlog (last lines; all of it below):\n{}",
        pings.len(),
        seen(&proxy),
        tail(&agent.logs())
    );
    assert!(
        proxy.injected("black_hole_before") >= 1,
        "the agent kept calling AWS meanwhile: {}",
        seen(&proxy)
    );

    // Wedged: pings stop, and that is what systemd acts on.
    agent.signal(Signal::SIGSTOP);
    let _ = pings_during(&mut notify, Duration::from_millis(300));
    let stopped = pings_during(&mut notify, Duration::from_secs(3));
    agent.signal(Signal::SIGCONT);
    assert!(
        stopped.is_empty(),
        "{} pings from a stopped agent",
        stopped.len()
    );
    let resumed = pings_during(&mut notify, Duration::from_secs(3));
    assert!(!resumed.is_empty(), "pings resume after SIGCONT");
}
