//! A terminate lifecycle hook: drainerd drains, keeps the hook alive while
//! a job finishes, then completes it with CONTINUE.

mod support;

use std::time::Duration;

use support::lifecycle::LifecycleFixture;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_lifecycle_terminated_drains_heartbeats_and_completes_the_hook() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "lifecycle", None).await;
    let asg = asg_client(&moto.endpoint);
    let instances = create_group(&asg, &moto.endpoint, "workers", 1).await;
    let me = instances[0].clone();
    asg.put_lifecycle_hook()
        .auto_scaling_group_name("workers")
        .lifecycle_hook_name("drain-hook")
        .lifecycle_transition("autoscaling:EC2_INSTANCE_TERMINATING")
        .heartbeat_timeout(300)
        .send()
        .await
        .unwrap();
    let fixture = LifecycleFixture::start(moto.port, "workers", "drain-hook", &me).await;
    let sim = ImdsSim::start(&me);
    sim.call("POST", "/lifecycle", r#"{"state":"InService"}"#);

    let wd = Workdir::new();
    let out = wd.path("done");
    let job = wd.script("job.sh", "body=$(cat)\nsleep 5\necho \"$body\" >> \"$OUT\"");
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        "[fleet]\nlifecycle_hook = \"drain-hook\"\nlifecycle_heartbeat_interval = \"1s\"",
    );
    let mut env = sim.env();
    env.push(("OUT", out.to_str().unwrap().into()));
    env.push(("DRAINERD_FLEET_ENDPOINT_URL", fixture.endpoint.clone()));
    let agent = start_agent(&cfg, &env);
    assert!(
        agent
            .wait_log("member of Auto Scaling group", Duration::from_secs(15))
            .await,
        "log:\n{}",
        agent.logs()
    );
    send(&sqs, &url, "in-progress").await;
    let running = eventually(Duration::from_secs(10), || async {
        (depth(&sqs, &url).await.1 == 1).then_some(())
    })
    .await;
    assert!(running.is_some());

    // Auto Scaling moves the instance to Terminating:Wait.
    sim.call("POST", "/lifecycle", r#"{"state":"Terminated"}"#);
    assert!(
        agent
            .wait_log("draining: stopped receiving", Duration::from_secs(3))
            .await,
        "log:\n{}",
        agent.logs()
    );
    send(&sqs, &url, "not-for-me").await;

    let completed = eventually(Duration::from_secs(20), || async {
        fixture
            .calls()
            .iter()
            .any(|c| c.0 == "CompleteLifecycleAction")
            .then_some(())
    })
    .await;
    assert!(
        completed.is_some(),
        "no CompleteLifecycleAction; log:\n{}",
        agent.logs()
    );
    let calls = fixture.calls();
    let beats = calls
        .iter()
        .take_while(|c| c.0 == "RecordLifecycleActionHeartbeat")
        .count();
    assert!(beats >= 2, "heartbeats while the job finished: {calls:?}");
    assert_eq!(
        calls.last().unwrap(),
        &(
            "CompleteLifecycleAction".to_string(),
            "CONTINUE".to_string()
        )
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.0 == "CompleteLifecycleAction")
            .count(),
        1
    );
    // The job finished first, its message is deleted, and nothing new ran.
    assert_eq!(read_lines(&out), vec!["in-progress"]);
    assert!(
        agent
            .logs()
            .contains("lifecycle action completed (CONTINUE)"),
        "log:\n{}",
        agent.logs()
    );
    assert!(
        !agent.logs().contains("heartbeat failed"),
        "fixture accepted every call; log:\n{}",
        agent.logs()
    );
    let left = eventually(Duration::from_secs(5), || async {
        receive_one(&sqs, &url, 1).await
    })
    .await;
    assert_eq!(left.map(|m| m.1).as_deref(), Some("not-for-me"));
}
