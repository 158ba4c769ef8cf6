use super::*;

/// Runs `sh -c script` with `body` on stdin.
async fn run_sh(script: &str, body: Vec<u8>) -> Exit {
    run_with(
        script,
        body,
        Duration::from_secs(30),
        CancellationToken::new(),
        None,
    )
    .await
}

/// A stubborn job's grace: far longer than any test waits.
const LONG_GRACE: Duration = Duration::from_secs(60);

async fn run_with(
    script: &str,
    body: Vec<u8>,
    timeout: Duration,
    stop: CancellationToken,
    kill_by: Option<Instant>,
) -> Exit {
    let body = bytes::Bytes::from(body);
    let spec = JobSpec {
        run_as: None,
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        working_dir: None,
        env: Vec::new(),
        stdin: body,
        deadline: Instant::now() + timeout,
        kill_grace: if kill_by.is_some() {
            LONG_GRACE
        } else {
            Duration::from_secs(1)
        },
        kill_by: watch::channel(kill_by).1,
        message_id: Arc::from("m-1"),
        line_max: 1000,
    };
    let budget = Arc::new(LineBudget::new(100));
    run(spec, stop, budget, Arc::default()).await
}

#[test]
fn a_missing_or_unexecutable_command_cannot_start() {
    assert_eq!(can_start("/bin/sh", None), Ok(()));
    assert_eq!(can_start("sh", None), Ok(()));
    assert!(can_start("/no/such/worker", None)
        .unwrap_err()
        .contains("does not exist"));
    let plain = tempfile::NamedTempFile::new().unwrap();
    assert!(can_start(plain.path().to_str().unwrap(), None)
        .unwrap_err()
        .contains("not an executable"));
    assert!(can_start("no-such-worker-here", None)
        .unwrap_err()
        .contains("PATH"));
    assert!(
        can_start("/bin/sh", Some(std::path::Path::new("/no/such/dir")))
            .unwrap_err()
            .contains("working directory")
    );
}

/// Runs `script` (which touches `$READY` once its SIGTERM trap is
/// set), stopping it once it is ready: no race with the shell's start.
async fn stopped_once_ready(script: &str) -> Exit {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let script = format!("READY={}; {script}", ready.display());
    let stop = CancellationToken::new();
    let (s2, r2) = (stop.clone(), ready.clone());
    tokio::spawn(async move {
        while !r2.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        s2.cancel();
    });
    run_with(&script, Vec::new(), Duration::from_secs(600), stop, None).await
}

#[tokio::test]
async fn exit_0_in_the_kill_grace_is_success() {
    // SIGTERM (a drain's stop); the job finishes its work and exits 0.
    let graceful = "trap 'exit 0' TERM; touch $READY; while :; do sleep 0.05; done";
    assert_eq!(stopped_once_ready(graceful).await, Exit::Code(0));
    // Exiting otherwise in the grace is still a stop.
    let failing = "trap 'exit 3' TERM; touch $READY; while :; do sleep 0.05; done";
    assert_eq!(stopped_once_ready(failing).await, Exit::Stopped);
}

#[tokio::test]
async fn sigkill_comes_at_the_hard_deadline_whatever_the_grace() {
    // A job that ignores SIGTERM, stopped with 0.3 s left to a deadline
    // far shorter than its 60 s grace.
    let stubborn = "trap '' TERM; while :; do sleep 0.05; done";
    let stop = CancellationToken::new();
    stop.cancel();
    let started = std::time::Instant::now();
    let exit = run_with(
        stubborn,
        Vec::new(),
        Duration::from_secs(30),
        stop,
        Some(Instant::now() + Duration::from_millis(300)),
    )
    .await;
    assert_eq!(exit, Exit::Stopped);
    assert!(
        started.elapsed() < LONG_GRACE / 2,
        "killed at the deadline, not after the grace: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_whole_body_arrives_on_stdin_small_empty_or_past_the_pipe() {
    // Small: written before the child starts. Empty: EOF at once.
    // 300 kB: more than a pipe holds, so the rest is written while the
    // child reads.
    for n in [5usize, 0, 300_000] {
        let script = format!("test \"$(wc -c)\" -eq {n}");
        assert_eq!(
            run_sh(&script, vec![b'x'; n]).await,
            Exit::Code(0),
            "{n} bytes"
        );
    }
}
