//! Fleet membership against moto and the metadata simulator: protection
//! while busy, leaving the group when idle (per-second and hourly billing),
//! never below MinSize, and dry runs that change nothing.

mod support;

use std::time::Duration;

use support::lifecycle::LifecycleFixture;
use support::*;

async fn protected(asg: &aws_sdk_autoscaling::Client, id: &str) -> Option<bool> {
    let out = asg
        .describe_auto_scaling_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    out.auto_scaling_instances()
        .first()
        .map(|i| i.protected_from_scale_in().unwrap_or(false))
}

async fn desired(asg: &aws_sdk_autoscaling::Client, group: &str) -> i32 {
    let out = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .unwrap();
    out.auto_scaling_groups()[0].desired_capacity().unwrap()
}

struct Fleet {
    moto: Moto,
    sqs: aws_sdk_sqs::Client,
    asg: aws_sdk_autoscaling::Client,
    url: String,
    me: String,
    sim: ImdsSim,
    wd: Workdir,
}

async fn fleet(group: &str, launched_ago: &str) -> Fleet {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "work", None).await;
    let asg = asg_client(&moto.endpoint);
    let me = create_group(&asg, &moto.endpoint, group, 3).await[0].clone();
    let sim = ImdsSim::start(&me);
    sim.call(
        "POST",
        "/instance",
        &format!(r#"{{"launched_ago":"{launched_ago}"}}"#),
    );
    Fleet {
        moto,
        sqs,
        asg,
        url,
        me,
        sim,
        wd: Workdir::new(),
    }
}

fn agent(f: &Fleet, job: &str, fleet_toml: &str, asg_endpoint: &str) -> Agent {
    let script = f.wd.script("job.sh", job);
    let cfg = f.wd.config(
        &f.moto.endpoint,
        &f.url,
        &[script.to_str().unwrap()],
        &format!("[fleet]\ncheck_interval = \"1s\"\n{fleet_toml}"),
    );
    let mut env = f.sim.env();
    env.push(("DRAINERD_FLEET_ENDPOINT_URL", asg_endpoint.to_string()));
    start_agent(&cfg, &env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_instance_leaves_its_group_with_decrement() {
    let f = fleet("idle", "10m").await;
    let a = agent(
        &f,
        "cat >/dev/null",
        "idle_timeout = \"3s\"\nmin_lifetime = \"0s\"",
        &f.moto.endpoint,
    );
    let gone = eventually(Duration::from_secs(30), || async {
        let out = f
            .asg
            .describe_auto_scaling_instances()
            .instance_ids(&f.me)
            .send()
            .await
            .unwrap();
        out.auto_scaling_instances().is_empty().then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "instance still in the group; log:\n{}",
        a.logs()
    );
    assert_eq!(
        desired(&f.asg, "idle").await,
        2,
        "desired capacity decremented 3 -> 2"
    );
    let terminated = eventually(Duration::from_secs(10), || async {
        let state = ec2_state(&f.moto.endpoint, &f.me);
        (state == "terminated" || state == "shutting-down").then_some(())
    })
    .await;
    assert!(
        terminated.is_some(),
        "EC2 shows {}",
        ec2_state(&f.moto.endpoint, &f.me)
    );
    assert!(
        a.wait_log("left the Auto Scaling group", Duration::from_secs(5))
            .await,
        "log:\n{}",
        a.logs()
    );
    assert!(a.logs().contains("per-second billing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protection_is_on_while_busy_and_off_after_the_linger() {
    let f = fleet("busy", "10m").await;
    let a = agent(
        &f,
        "cat >/dev/null; sleep 4",
        "billing = \"never\"\nprotection_linger = \"3s\"",
        &f.moto.endpoint,
    );
    assert!(
        a.wait_log("fleet logic on", Duration::from_secs(15)).await,
        "log:\n{}",
        a.logs()
    );
    assert_eq!(protected(&f.asg, &f.me).await, Some(false));
    send(&f.sqs, &f.url, "work").await;
    let on = eventually(Duration::from_secs(5), || async {
        (protected(&f.asg, &f.me).await == Some(true)).then_some(())
    })
    .await;
    assert!(
        on.is_some(),
        "protected while the job runs; log:\n{}",
        a.logs()
    );
    // The job takes 4 s, then 3 s of linger.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        protected(&f.asg, &f.me).await,
        Some(true),
        "still protected during the linger"
    );
    let off = eventually(Duration::from_secs(10), || async {
        (protected(&f.asg, &f.me).await == Some(false)).then_some(())
    })
    .await;
    assert!(
        off.is_some(),
        "protection dropped after the linger; log:\n{}",
        a.logs()
    );
    assert!(
        !a.logs()
            .contains("TerminateInstanceInAutoScalingGroup accepted"),
        "billing never: never leaves"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_billing_leaves_only_near_the_end_of_the_hour() {
    let late = fleet("late", "57m").await;
    let early = fleet("early", "20m").await;
    let hourly = "billing = \"hourly\"\nidle_timeout = \"1s\"\nmin_lifetime = \"0s\"";
    let a_late = agent(&late, "cat >/dev/null", hourly, &late.moto.endpoint);
    let a_early = agent(&early, "cat >/dev/null", hourly, &early.moto.endpoint);
    let left = eventually(Duration::from_secs(30), || async {
        (desired(&late.asg, "late").await == 2).then_some(())
    })
    .await;
    assert!(
        left.is_some(),
        "57 min into its hour: leaves; log:\n{}",
        a_late.logs()
    );
    assert!(
        a_early
            .wait_log("hourly window opens", Duration::from_secs(10))
            .await,
        "log:\n{}",
        a_early.logs()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        desired(&early.asg, "early").await,
        3,
        "20 min into its hour: stays"
    );
    assert!(
        a_early.logs().contains("leaves in 35m") || a_early.logs().contains("leaves in 36m"),
        "log:\n{}",
        a_early.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_min_size_it_stays_even_if_the_group_shrinks_underneath() {
    let f = fleet("minsize", "10m").await;
    // At desired == min the decision stays without asking AWS.
    f.asg
        .update_auto_scaling_group()
        .auto_scaling_group_name("minsize")
        .min_size(3)
        .send()
        .await
        .unwrap();
    // The fixture answers TerminateInstanceInAutoScalingGroup with AWS's
    // MinSize ValidationError (moto does not enforce MinSize).
    let fixture = LifecycleFixture::start_rejecting_min_size(f.moto.port).await;
    let a = agent(
        &f,
        "cat >/dev/null",
        "idle_timeout = \"2s\"\nmin_lifetime = \"0s\"",
        &fixture.endpoint,
    );
    assert!(
        a.wait_log("group at MinSize", Duration::from_secs(15))
            .await,
        "log:\n{}",
        a.logs()
    );
    assert_eq!(
        fixture.terminate_calls(),
        0,
        "no terminate attempted at desired == min"
    );
    // Now the group looks shrinkable, but AWS refuses (someone lowered
    // desired meanwhile): drainerd stays, logs it, keeps working.
    f.asg
        .update_auto_scaling_group()
        .auto_scaling_group_name("minsize")
        .min_size(1)
        .send()
        .await
        .unwrap();
    // The group figures are cached; a restart re-reads them.
    drop(a);
    let a = agent(
        &f,
        "cat >/dev/null; echo ran",
        "idle_timeout = \"2s\"\nmin_lifetime = \"0s\"",
        &fixture.endpoint,
    );
    assert!(
        a.wait_log("the group is at MinSize", Duration::from_secs(20))
            .await,
        "log:\n{}",
        a.logs()
    );
    assert!(fixture.terminate_calls() >= 1);
    assert_eq!(desired(&f.asg, "minsize").await, 3);
    send(&f.sqs, &f.url, "still working").await;
    assert!(
        a.wait_log("job finished", Duration::from_secs(15)).await,
        "intake resumed; log:\n{}",
        a.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_makes_no_mutating_call() {
    let f = fleet("dry", "10m").await;
    let fixture = LifecycleFixture::start(f.moto.port, "dry", "none", &f.me).await;
    let a = agent(
        &f,
        "cat >/dev/null; sleep 1",
        "idle_timeout = \"2s\"\nmin_lifetime = \"0s\"\ndry_run = true",
        &fixture.endpoint,
    );
    send(&f.sqs, &f.url, "work").await;
    assert!(
        a.wait_log("dry run: would pause intake", Duration::from_secs(20))
            .await,
        "log:\n{}",
        a.logs()
    );
    assert!(a.logs().contains("dry run: would SetInstanceProtection"));
    let mutating = fixture
        .actions()
        .iter()
        .filter(|a| a.starts_with("Set") || a.starts_with("Terminate") || a.starts_with("Update"))
        .count();
    assert_eq!(mutating, 0, "calls seen: {:?}", fixture.actions());
    assert!(
        fixture
            .actions()
            .iter()
            .any(|a| a == "DescribeAutoScalingGroups"),
        "{:?}",
        fixture.actions()
    );
    assert_eq!(desired(&f.asg, "dry").await, 3);
    assert_eq!(protected(&f.asg, &f.me).await, Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_leaving_it_powers_off_through_systemd_if_still_running() {
    let f = fleet("poweroff", "10m").await;
    // A stand-in `systemctl` first on PATH records what drainerd asks of it.
    let bin = f.wd.path("bin");
    std::fs::create_dir(&bin).unwrap();
    let asked = f.wd.path("systemctl-args");
    f.wd.script(
        "bin/systemctl",
        &format!("echo \"$@\" >> {}", asked.display()),
    );
    let script = f.wd.script("job.sh", "cat >/dev/null");
    let cfg = f.wd.config(
        &f.moto.endpoint,
        &f.url,
        &[script.to_str().unwrap()],
        "[fleet]\ncheck_interval = \"1s\"\nidle_timeout = \"2s\"\nmin_lifetime = \"0s\"\npoweroff_after = \"2s\"",
    );
    let mut env = f.sim.env();
    env.push(("DRAINERD_FLEET_ENDPOINT_URL", f.moto.endpoint.clone()));
    env.push((
        "PATH",
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
    ));
    let a = start_agent(&cfg, &env);
    assert!(
        a.wait_log("left the Auto Scaling group", Duration::from_secs(20))
            .await,
        "log:\n{}",
        a.logs()
    );
    assert!(
        read_lines(&asked).is_empty(),
        "no power-off before poweroff_after"
    );
    let off = eventually(Duration::from_secs(10), || async {
        (read_lines(&asked) == vec!["poweroff"]).then_some(())
    })
    .await;
    assert!(
        off.is_some(),
        "systemctl poweroff was not run; log:\n{}",
        a.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_member_sleeps() {
    // The fleet task waits on timers and channels; one that spins (a
    // closed channel polled in a loop) burns a core while nothing happens.
    let f = fleet("quiet", "10m").await;
    let a = agent(
        &f,
        "cat >/dev/null",
        "idle_timeout = \"1h\"",
        &f.moto.endpoint,
    );
    assert!(
        a.wait_log("fleet logic on", Duration::from_secs(15)).await,
        "log:\n{}",
        a.logs()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = a.cpu_ms();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = a.cpu_ms() - before;
    assert!(used < 300, "an idle agent used {used} ms of CPU in 3 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_tells_systemd_a_status_not_stopping() {
    // STOPPING=1 would make systemd treat the unit as stopping by itself:
    // no SIGTERM at poweroff, a SIGKILL TimeoutStopSec later.
    let f = fleet("notify", "10m").await;
    let mut notify = NotifySocket::bind(&f.wd);
    let script = f.wd.script("job.sh", "cat >/dev/null");
    let cfg = f.wd.config(
        &f.moto.endpoint,
        &f.url,
        &[script.to_str().unwrap()],
        "[fleet]\ncheck_interval = \"1s\"\nidle_timeout = \"3s\"\nmin_lifetime = \"0s\"",
    );
    let mut env = f.sim.env();
    env.push(("DRAINERD_FLEET_ENDPOINT_URL", f.moto.endpoint.clone()));
    env.push(("NOTIFY_SOCKET", notify.path.to_str().unwrap().into()));
    let mut a = start_agent(&cfg, &env);
    let start = std::time::Instant::now();
    let mut left_at = None;
    while start.elapsed() < Duration::from_secs(40) {
        notify.poll();
        if left_at.is_none() && notify.saw("left the group") {
            left_at = Some(std::time::Instant::now());
        }
        if left_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
            break;
        }
    }
    assert!(
        left_at.is_some(),
        "no status naming the leave: {:?}\n{}",
        notify.messages,
        a.logs()
    );
    assert!(
        !notify.saw("STOPPING=1"),
        "STOPPING=1 after leaving: {:?}",
        notify.messages
    );
    // The platform's SIGTERM then stops it as usual.
    a.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(a.wait_exit(Duration::from_secs(30)), Some(0));
    notify.drain();
    assert!(
        notify.saw("STOPPING=1"),
        "STOPPING=1 on SIGTERM: {:?}",
        notify.messages
    );
}
