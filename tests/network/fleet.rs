//! The fleet's calls under a failing network: leaving the group while Auto
//! Scaling calls black-hole, the group lookup at boot while Auto Scaling is
//! unreachable, and the terminate lifecycle hook completed only after
//! every message is settled.

use std::time::Duration;

use super::{recorder_config, seen, send_many, tail};
use crate::support::lifecycle::LifecycleFixture;
use crate::support::*;

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

/// moto with a queue and a group of three, the metadata simulator as its
/// first instance, and the fault proxy in front of moto.
struct World {
    moto: Moto,
    sqs: aws_sdk_sqs::Client,
    asg: aws_sdk_autoscaling::Client,
    url: String,
    me: String,
    sim: ImdsSim,
    proxy: FaultProxy,
    wd: Workdir,
}

async fn world(group: &str) -> World {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "work", None).await;
    let asg = asg_client(&moto.endpoint);
    let me = create_group(&asg, &moto.endpoint, group, 3).await[0].clone();
    let sim = ImdsSim::start(&me);
    let proxy = FaultProxy::start(moto.port);
    World {
        moto,
        sqs,
        asg,
        url,
        me,
        sim,
        proxy,
        wd: Workdir::new(),
    }
}

/// drainerd with both SQS and Auto Scaling through `asg_endpoint`'s proxy.
fn agent(
    w: &World,
    fleet_toml: &str,
    asg_endpoint: &str,
    extra_env: &[(&'static str, String)],
) -> (Agent, std::path::PathBuf) {
    let (cfg, out) = recorder_config(
        &w.wd,
        &w.proxy.endpoint,
        &w.url,
        "30s",
        "10s",
        &format!("concurrency = 4\n[fleet]\ncheck_interval = \"1s\"\n{fleet_toml}"),
    );
    let mut env = w.sim.env();
    env.push(("OUT", out.to_str().unwrap().into()));
    env.push(("DRAINERD_FLEET_ENDPOINT_URL", asg_endpoint.to_string()));
    env.extend(extra_env.iter().cloned());
    (start_agent(&cfg, &env), out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_agent_leaves_while_auto_scaling_calls_black_hole() {
    let w = world("leaving").await;
    let (a, _) = agent(
        &w,
        "idle_timeout = \"3s\"\nmin_lifetime = \"0s\"",
        &w.proxy.endpoint,
        &[],
    );
    assert!(
        a.wait_log("fleet logic on", Duration::from_secs(20)).await,
        "log (last lines; all of it below):\n{}",
        tail(&a.logs())
    );
    // From now on ~21 % of the Auto Scaling calls never answer: one in
    // eight is read and dropped, one in ten of the rest takes effect with
    // its answer lost. The first two in a row.
    w.proxy
        .add(Rule::new(Fault::BlackHoleBefore, Share::Every(8)).apis(&["autoscaling"]));
    w.proxy
        .add(Rule::new(Fault::BlackHoleAfter, Share::Every(10)).apis(&["autoscaling"]));
    let gone = eventually(Duration::from_secs(60), || async {
        let out = w
            .asg
            .describe_auto_scaling_instances()
            .instance_ids(&w.me)
            .send()
            .await
            .unwrap();
        out.auto_scaling_instances().is_empty().then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "after 60 s still in the group; {}\nlog (last lines; all of it below):\n{}",
        seen(&w.proxy),
        tail(&a.logs())
    );
    assert!(
        w.proxy.injected("black_hole_before") >= 1,
        "{}",
        seen(&w.proxy)
    );
    // Exactly one decrement, even if a lost answer made drainerd ask twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        desired(&w.asg, "leaving").await,
        2,
        "desired capacity 3 -> 2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_lookup_survives_auto_scaling_down_at_boot() {
    let w = world("boot").await;
    // A job already waiting: it runs 20 s as soon as drainerd receives.
    send_many(&w.sqs, &w.url, "long", 1).await;
    // Auto Scaling unreachable for the first seconds of the boot (every
    // request reset); SQS answers throughout.
    w.proxy.down_for(Duration::from_secs(6), &["autoscaling"]);
    let (a, out) = agent(
        &w,
        "billing = \"never\"\nprotection_linger = \"2s\"",
        &w.proxy.endpoint,
        &[("LONG", "20".into())],
    );
    let on = eventually(Duration::from_secs(40), || async {
        (protected(&w.asg, &w.me).await == Some(true)).then_some(())
    })
    .await;
    assert!(
        on.is_some(),
        "scale-in protection never turned on while the job ran (Auto Scaling was down for the first 6 s); {}\nlog (last lines; all of it below):\n{}",
        seen(&w.proxy),
        tail(&a.logs())
    );
    assert!(
        w.proxy.injected("down") >= 1,
        "the outage hit the lookup: {}",
        seen(&w.proxy)
    );
    assert!(
        read_lines(&out).is_empty(),
        "protection came on while the job ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_hook_completes_only_after_every_delete_is_answered() {
    let w = world("hooked").await;
    w.asg
        .put_lifecycle_hook()
        .auto_scaling_group_name("hooked")
        .lifecycle_hook_name("drain-hook")
        .lifecycle_transition("autoscaling:EC2_INSTANCE_TERMINATING")
        .heartbeat_timeout(300)
        .send()
        .await
        .unwrap();
    // Lifecycle-hook calls answered by the fixture (moto lacks them), behind
    // a second proxy that records when each arrives.
    let fixture = LifecycleFixture::start(w.moto.port, "hooked", "drain-hook", &w.me).await;
    let fixture_port: u16 = fixture
        .endpoint
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let asg_proxy = FaultProxy::start(fixture_port);
    w.sim.call("POST", "/lifecycle", r#"{"state":"InService"}"#);
    // Every delete takes 3 s to answer (SQS applies it after the delay).
    w.proxy
        .delay_api("DeleteMessageBatch", Duration::from_secs(3));
    w.proxy.delay_api("DeleteMessage", Duration::from_secs(3));
    let bodies = send_many(&w.sqs, &w.url, "short", 4).await;
    let (a, out) = agent(
        &w,
        "billing = \"never\"\nlifecycle_hook = \"drain-hook\"\nlifecycle_heartbeat_interval = \"1s\"",
        &asg_proxy.endpoint,
        &[("SLEEP", "5".into())],
    );
    let running = eventually(Duration::from_secs(20), || async {
        (depth(&w.sqs, &w.url).await == (0, 4)).then_some(())
    })
    .await;
    assert!(
        running.is_some(),
        "log (last lines; all of it below):\n{}",
        tail(&a.logs())
    );
    // Auto Scaling moves the instance to Terminating:Wait.
    w.sim
        .call("POST", "/lifecycle", r#"{"state":"Terminated"}"#);

    let completed = eventually(Duration::from_secs(30), || async {
        asg_proxy
            .events()
            .into_iter()
            .find(|e| e.api == "CompleteLifecycleAction")
    })
    .await;
    assert!(
        completed.is_some(),
        "no CompleteLifecycleAction; log (last lines; all of it below):\n{}",
        tail(&a.logs())
    );
    let complete = completed.unwrap();
    // Every delete answered (3 s each), then: which came first?
    let deletes = eventually(Duration::from_secs(20), || async {
        let d: Vec<_> = w
            .proxy
            .events()
            .into_iter()
            .filter(|e| e.api.starts_with("DeleteMessage"))
            .collect();
        (runs_of(&out, &bodies) == 4 && !d.is_empty() && d.iter().all(|e| e.answered.is_some()))
            .then_some(d)
    })
    .await;
    let deletes = deletes.unwrap_or_else(|| {
        panic!(
            "jobs or deletes unfinished: runs {:?}; {}\nlog (last lines; all of it below):\n{}",
            super::runs(&out),
            seen(&w.proxy),
            tail(&a.logs())
        )
    });
    let last_answer = deletes.iter().filter_map(|e| e.answered).max().unwrap();
    assert!(
        last_answer < complete.received,
        "CompleteLifecycleAction arrived {:?} before the last of {} delete requests was answered: the hook was completed before every message was settled; log (last lines; all of it below):\n{}",
        last_answer - complete.received,
        deletes.len(),
        tail(&a.logs())
    );
    assert_eq!(depth(&w.sqs, &w.url).await, (0, 0), "every message deleted");
    assert_eq!(
        fixture.calls().last().map(|c| c.1.clone()).as_deref(),
        Some("CONTINUE")
    );
}

/// How many of `bodies` ran at least once.
fn runs_of(out: &std::path::Path, bodies: &[String]) -> usize {
    let r = super::runs(out);
    bodies.iter().filter(|b| r.contains_key(*b)).count()
}
