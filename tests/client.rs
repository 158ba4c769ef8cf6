//! The client side against moto (SQS and DynamoDB): the enqueuer library,
//! job-state tracking written by the real agent, `drainerd enqueue
//! --from-file`, `drainerd job`, `drainerd queue`, `drainerd dlq redrive`
//! and `drainerd table create`.

mod support;

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use drainerd::ops::enqueue::{Enqueuer, Job, JobId};
use drainerd::tracking::{seq, JobState, Table, TrackError, Update};
use support::*;

const TABLE: &str = "drainerd-jobs";

/// Fails (exit 3) when the body contains "fail"; otherwise succeeds.
/// Records the job id it was given when `$IDS` is set.
const JOB: &str = r#"body=$(cat)
[ -n "$IDS" ] && echo "$DRAINERD_JOB_ID" >> "$IDS"
case "$body" in *fail*) exit 3 ;; esac
exit 0"#;

fn tracking_section(endpoint: &str) -> String {
    format!(
        "[tracking]\nenabled = true\ntable = \"{TABLE}\"\nregion = \"us-east-1\"\nendpoint_url = {endpoint:?}\n"
    )
}

/// `drainerd <args>` to completion with `envs`: (exit code, stdout, stderr).
fn cli(args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = drainerd_cmd();
    cmd.args(args)
        .env("DRAINERD_CONFIG", "/nonexistent/drainerd.toml")
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run drainerd");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Creates the tracking table with `drainerd table create` (and checks a
/// second run finds it).
fn create_table(endpoint: &str) {
    let env = [
        ("DRAINERD_TRACKING_ENDPOINT_URL", endpoint),
        ("DRAINERD_TRACKING_REGION", "us-east-1"),
    ];
    let (code, out, err) = cli(&["table", "create"], &env);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("created table drainerd-jobs"), "{out}");
    let (code, out, _) = cli(&["table", "create"], &env);
    assert_eq!(code, Some(0));
    assert!(out.contains("already exists"), "{out}");
}

fn table(endpoint: &str) -> Table {
    Table::from_client(dynamodb_client(endpoint), TABLE, Duration::from_secs(3600))
}

/// `drainerd_tracking_updates_total` from the agent's /metrics, by result:
/// [written, stale, failed, dropped].
fn tracking_updates(port: u16) -> [f64; 4] {
    let m = parse_metrics(&get(port, "/metrics").2);
    ["written", "stale", "failed", "dropped"].map(|r| {
        metric(
            &m,
            &format!("drainerd_tracking_updates_total{{result={r}}}"),
        )
    })
}

async fn state(t: &Table, id: &str) -> Option<drainerd::ops::table::JobStatus> {
    drainerd::ops::table::status(t, id).await.unwrap()
}

/// Check 1: 25 jobs in one call (three SendMessageBatch calls, counted at a
/// relay), drained by the agent: every job reads Succeeded, attempts 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_five_jobs_in_three_batches_all_read_succeeded() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "jobs", None).await;
    create_table(&moto.endpoint);
    let proxy = Proxy::start(moto.port).await;
    let enqueuer = Enqueuer::new(
        sqs_client(&format!("http://127.0.0.1:{}", proxy.port)),
        &url,
    )
    .with_tracking(table(&moto.endpoint));
    let jobs: Vec<Job> = (0..25)
        .map(|i| Job::new(format!("job {i}")).attribute("n", i.to_string()))
        .collect();
    let ids: Vec<JobId> = enqueuer
        .enqueue_many(&jobs)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        proxy.connections.load(Ordering::SeqCst),
        3,
        "25 jobs must take three SendMessageBatch calls"
    );
    let t = table(&moto.endpoint);
    for id in &ids {
        let s = state(&t, id.as_str()).await.expect("tracked");
        assert_eq!(s.state, Some(JobState::Queued), "{s:?}");
    }

    let wd = Workdir::new();
    let job = wd.script("job.sh", JOB);
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        &format!("concurrency = 4\n{}", tracking_section(&moto.endpoint)),
    );
    let seen_ids = wd.path("ids");
    let (agent, port) =
        start_with_page(&cfg, vec![("IDS", seen_ids.to_str().unwrap().into())]).await;
    let all_done = eventually(Duration::from_secs(60), || async {
        for id in &ids {
            if state(&t, id.as_str()).await?.state != Some(JobState::Succeeded) {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert!(
        all_done.is_some(),
        "not every job reached Succeeded\n{}",
        agent.logs()
    );
    for id in &ids {
        let s = state(&t, id.as_str()).await.unwrap();
        assert_eq!(s.attempts, 1, "{s:?}");
        assert_eq!(s.exit_code, Some(0));
        assert!(s.duration_ms.is_some() && s.started_at.is_some() && s.queued_at.is_some());
        let states: Vec<&str> = s.history.iter().map(|h| h.state.as_str()).collect();
        assert_eq!(states, ["Queued", "Running", "Succeeded"], "{s:?}");
    }
    assert_eq!(depth(&sqs, &url).await, (0, 0), "every message deleted");
    // /metrics counts the agent's writes: Running and Succeeded per job.
    assert_eq!(tracking_updates(port), [50.0, 0.0, 0.0, 0.0]);
    // Each job saw its own id as DRAINERD_JOB_ID.
    let mut seen = read_lines(&seen_ids);
    seen.sort();
    let mut want: Vec<String> = ids.iter().map(|i| i.0.clone()).collect();
    want.sort();
    assert_eq!(seen, want);

    // `drainerd job ID` prints the state and the history.
    let (code, out, err) = cli(
        &["job", ids[0].as_str()],
        &[
            ("DRAINERD_TRACKING_ENABLED", "true"),
            ("DRAINERD_TRACKING_ENDPOINT_URL", &moto.endpoint),
            ("DRAINERD_TRACKING_REGION", "us-east-1"),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("state       Succeeded"), "{out}");
    assert!(out.contains("attempts    1"), "{out}");
    assert!(out.contains("Queued") && out.contains("Running"), "{out}");
    let (code, _, err) = cli(
        &["job", "no-such-job"],
        &[
            ("DRAINERD_TRACKING_ENABLED", "true"),
            ("DRAINERD_TRACKING_ENDPOINT_URL", &moto.endpoint),
            ("DRAINERD_TRACKING_REGION", "us-east-1"),
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no-such-job"), "{err}");
    // Without tracking configured: a configuration error.
    let (code, _, err) = cli(&["job", ids[0].as_str()], &[]);
    assert_eq!(code, Some(78), "{err}");
}

/// Check 1: a failing job reads Retrying, then DeadLettered on the receive
/// that reaches the DLQ's maxReceiveCount (read by the agent at start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_reads_retrying_then_dead_lettered() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, dlq) = create_queue(&sqs, "jobs", Some(2)).await;
    create_table(&moto.endpoint);
    let enqueuer = Enqueuer::new(sqs.clone(), &url).with_tracking(table(&moto.endpoint));
    let id = enqueuer.enqueue("please fail", &[]).await.unwrap();

    let wd = Workdir::new();
    let job = wd.script("job.sh", JOB);
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        &tracking_section(&moto.endpoint),
    );
    // Long enough between attempts to read Retrying.
    let agent = Agent::start(
        &cfg,
        &[
            ("DRAINERD_JOB_RETRY_BACKOFF_BASE", "3s"),
            ("DRAINERD_JOB_RETRY_BACKOFF_MAX", "3s"),
        ],
    );
    let t = table(&moto.endpoint);
    let mut seen: Vec<JobState> = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(40) {
        if let Some(s) = state(&t, id.as_str()).await.and_then(|s| s.state) {
            if seen.last() != Some(&s) {
                seen.push(s);
            }
            if s == JobState::DeadLettered {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let retrying = seen.iter().position(|s| *s == JobState::Retrying);
    let dead = seen.iter().position(|s| *s == JobState::DeadLettered);
    assert!(
        matches!((retrying, dead), (Some(r), Some(d)) if r < d),
        "observed {seen:?}\n{}",
        agent.logs()
    );
    let s = state(&t, id.as_str()).await.unwrap();
    assert_eq!(s.attempts, 2);
    assert_eq!(s.exit_code, Some(3));
    let states: Vec<&str> = s.history.iter().map(|h| h.state.as_str()).collect();
    assert_eq!(
        states,
        ["Queued", "Running", "Retrying", "Running", "DeadLettered"]
    );
    // And SQS agrees: the message ends in the DLQ.
    let moved = eventually(Duration::from_secs(20), || async {
        let (v, f) = depth(&sqs, dlq.as_deref().unwrap()).await;
        (v + f == 1).then_some(())
    })
    .await;
    assert!(moved.is_some(), "the message never reached the DLQ");
}

/// Check 1: the condition refuses an older or duplicate update, and
/// nothing leaves a final state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_updates_are_refused_by_the_condition() {
    let moto = Moto::start();
    create_table(&moto.endpoint);
    let t = table(&moto.endpoint);
    let id = "job-ooo";
    t.write(&Update::new(id, JobState::Running, 1))
        .await
        .unwrap();
    t.write(&Update::new(id, JobState::Retrying, 1))
        .await
        .unwrap();
    t.write(&Update::new(id, JobState::Running, 2))
        .await
        .unwrap();
    // Older: attempt 1's outcome arriving after attempt 2 started.
    let late = t.write(&Update::new(id, JobState::Retrying, 1)).await;
    assert!(matches!(late, Err(TrackError::Stale(_))), "{late:?}");
    // The producer's Queued arriving after the worker's Running.
    let late = t.write(&Update::new(id, JobState::Queued, 0)).await;
    assert!(matches!(late, Err(TrackError::Stale(_))), "{late:?}");
    // A duplicate.
    let dup = t.write(&Update::new(id, JobState::Running, 2)).await;
    assert!(matches!(dup, Err(TrackError::Stale(_))), "{dup:?}");
    t.write(&Update::new(id, JobState::Succeeded, 2))
        .await
        .unwrap();
    // Nothing after a final state, not even a later attempt (a redelivery
    // after a delete that failed).
    let after = t.write(&Update::new(id, JobState::Running, 3)).await;
    assert!(matches!(after, Err(TrackError::Stale(_))), "{after:?}");
    let s = state(&t, id).await.unwrap();
    assert_eq!(s.state, Some(JobState::Succeeded));
    assert_eq!(s.attempts, 2);
    assert_eq!(s.history.len(), 4, "{:?}", s.history);
    assert!(seq(JobState::Running, 3) > seq(JobState::Succeeded, 2));
}

/// Check 1: with the table unreachable (and with it missing), jobs run,
/// messages are deleted, and the agent says what it could not record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_tracking_table_does_not_stop_jobs() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "jobs", None).await;
    for (case, endpoint) in [
        // Nothing listens there: every write fails to connect.
        ("unreachable", format!("http://127.0.0.1:{}", free_port())),
        // moto answers, but the table was never created.
        ("missing", moto.endpoint.clone()),
    ] {
        for i in 0..6 {
            send(&sqs, &url, &format!("{case} {i}")).await;
        }
        let wd = Workdir::new();
        let job = wd.script("job.sh", JOB);
        let cfg = wd.config(
            &moto.endpoint,
            &url,
            &[job.to_str().unwrap()],
            &format!("concurrency = 3\n{}", tracking_section(&endpoint)),
        );
        let start = Instant::now();
        let (mut agent, port) = start_with_page(&cfg, Vec::new()).await;
        let drained = eventually(Duration::from_secs(30), || async {
            (depth(&sqs, &url).await == (0, 0)).then_some(())
        })
        .await;
        assert!(drained.is_some(), "{case}: jobs stopped\n{}", agent.logs());
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{case}: draining 6 jobs took {:?}",
            start.elapsed()
        );
        assert!(
            agent
                .wait_log("could not record the job's state", Duration::from_secs(20))
                .await,
            "{case}: no tracking failure logged\n{}",
            agent.logs()
        );
        // /metrics counts every one of the 12 updates (Running and the
        // outcome per job) as failed or, if the writer fell behind, dropped.
        let counted = eventually(Duration::from_secs(30), || async {
            let [written, stale, failed, dropped] = tracking_updates(port);
            assert_eq!(written + stale, 0.0, "{case}");
            (failed + dropped == 12.0).then_some(())
        })
        .await;
        assert!(counted.is_some(), "{case}: {}", get(port, "/metrics").2);
        agent.signal(nix::sys::signal::Signal::SIGTERM);
        assert_eq!(agent.wait_exit(Duration::from_secs(20)), Some(0), "{case}");
        assert!(agent.logs().contains("6 done"), "{case}\n{}", agent.logs());
        // The measured requests per job, for `drainerd cost --requests-per-job`.
        let logs = agent.logs();
        let rpj: f64 = logs
            .split("sqs_requests_per_job=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{case}: no sqs_requests_per_job\n{logs}"));
        // At least one receive and a delete share for 6 jobs; far below one
        // request per job per second of the run.
        assert!(rpj > 0.1 && rpj < 20.0, "{case}: {rpj}");
    }
}

/// Check 2: 1,000 lines (3 malformed) in at most 100 SendMessageBatch
/// calls, counted at a relay (moto closes every connection after one
/// answer, so connections are calls); progress shown; malformed lines
/// named by number and not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_from_file_batches_reports_progress_and_bad_lines() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, _) = create_queue(&sqs, "bulk", None).await;
    let proxy = Proxy::start(moto.port).await;
    let wd = Workdir::new();
    let mut lines = Vec::new();
    for i in 1..=1000 {
        lines.push(match i {
            17 => "{\"body\": 42}".to_string(),
            500 => "{not json".to_string(),
            999 => "{\"body\": \"x\", \"attributes\": {\"AWS.bad\": \"1\"}}".to_string(),
            i if i % 2 == 0 => {
                format!("{{\"body\": \"job {i}\", \"attributes\": {{\"line\": \"{i}\"}}}}")
            }
            i => format!("plain job {i}"),
        });
    }
    let file = wd.write("jobs.jsonl", &(lines.join("\n") + "\n"));
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let env = [
        ("DRAINERD_QUEUE_ENDPOINT_URL", endpoint.as_str()),
        ("DRAINERD_QUEUE_REGION", "us-east-1"),
    ];
    let (code, out, err) = cli(
        &[
            "enqueue",
            "--queue",
            &url,
            "--attr",
            "batch=b1",
            "--from-file",
            file.to_str().unwrap(),
        ],
        &env,
    );
    // Some lines were bad: 65, after sending the good ones.
    assert_eq!(code, Some(65), "{err}");
    let calls = proxy.connections.load(Ordering::SeqCst);
    assert_eq!(
        calls, 100,
        "SendMessageBatch calls for 997 jobs (at most 100 allowed)"
    );
    assert!(err.matches("progress: ").count() >= 5, "{err}");
    assert!(err.contains("progress: 997/997"), "{err}");
    for n in [17, 500, 999] {
        assert!(
            err.contains(&format!("jobs.jsonl:{n}: ")),
            "line {n} not reported\n{err}"
        );
    }
    assert!(
        err.contains("997 of 1000 jobs queued; 3 malformed lines (lines 17, 500, 999)"),
        "{err}"
    );
    // One "LINE<TAB>JOB ID" per queued job; no malformed line among them.
    let queued: Vec<&str> = out.lines().collect();
    assert_eq!(queued.len(), 997);
    assert!(queued.iter().all(|l| {
        let n: usize = l.split('\t').next().unwrap().parse().unwrap();
        ![17, 500, 999].contains(&n)
    }));
    assert_eq!(
        depth(&sqs, &url).await.0,
        997,
        "exactly the good lines are queued"
    );

    // One job from the command line prints its id; bad input is named.
    let (code, out, err) = cli(
        &["enqueue", "--queue", &url, "--attr", "k=v", "hello"],
        &env,
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim().len(), 36, "a UUID: {out}");
    let (code, _, err) = cli(
        &["enqueue", "--queue", &url, "--attr", "novalue", "x"],
        &env,
    );
    assert_eq!(code, Some(64), "usage error: {err}");
    assert!(err.contains("is not K=V"), "{err}");
    let (code, _, err) = cli(
        &["enqueue", "--queue", &url, "--attr", "AWS.x=1", "x"],
        &env,
    );
    assert_eq!(code, Some(64), "{err}");
    let (code, _, err) = cli(
        &[
            "enqueue",
            "--queue",
            &url,
            "--from-file",
            "/nonexistent/jobs",
        ],
        &env,
    );
    assert_eq!(code, Some(66), "{err}");
    let (code, _, err) = cli(&["enqueue", "x"], &env);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("--queue"), "{err}");
    // A queue that does not exist: unavailable.
    let missing = url.replace("/bulk", "/nope");
    let (code, _, err) = cli(&["enqueue", "--queue", &missing, "x"], &env);
    assert_eq!(code, Some(69), "{err}");
}

/// Check 4: `dlq redrive` reports without --yes, moves with it, counts,
/// keeps job ids; `queue` shows the depths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_redrive_reports_then_moves_and_counts() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let (url, dlq) = create_queue(&sqs, "work", Some(3)).await;
    let dlq = dlq.unwrap();
    // Dead-lettered messages, as the redrive policy leaves them (with the
    // job id attribute the enqueuer set).
    let dead = Enqueuer::new(sqs.clone(), &dlq);
    let jobs: Vec<Job> = (0..7).map(|i| Job::new(format!("dead {i}"))).collect();
    let ids: Vec<String> = dead
        .enqueue_many(&jobs)
        .await
        .into_iter()
        .map(|r| r.unwrap().0)
        .collect();
    let env = [
        ("DRAINERD_QUEUE_URL", url.as_str()),
        ("DRAINERD_QUEUE_ENDPOINT_URL", moto.endpoint.as_str()),
        ("DRAINERD_QUEUE_REGION", "us-east-1"),
    ];
    let (code, out, err) = cli(&["queue"], &env);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("visible     0"), "{out}");
    assert!(out.contains("dlq depth   7"), "{out}");
    assert!(out.contains("after 3 receives"), "{out}");

    let (code, out, err) = cli(&["dlq", "redrive"], &env);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("7 messages in") && out.contains("nothing moved"),
        "{out}"
    );
    assert_eq!(depth(&sqs, &dlq).await, (7, 0), "reporting moved nothing");
    assert_eq!(depth(&sqs, &url).await, (0, 0));

    let (code, out, err) = cli(&["dlq", "redrive", "--yes", "--limit", "3"], &env);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("moved 3 messages"), "{out}");
    let (code, out, err) = cli(&["dlq", "redrive", "--yes"], &env);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("moved 4 messages"), "{out}");
    assert_eq!(depth(&sqs, &dlq).await, (0, 0));
    assert_eq!(depth(&sqs, &url).await, (7, 0));
    // Bodies and job ids came along.
    let got = sqs
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    let mut moved_ids: Vec<String> = got
        .messages()
        .iter()
        .map(|m| {
            assert!(m.body().unwrap().starts_with("dead "));
            m.message_attributes().unwrap()["drainerd-job-id"]
                .string_value()
                .unwrap()
                .to_string()
        })
        .collect();
    moved_ids.sort();
    let mut want = ids.clone();
    want.sort();
    // moto may return fewer than 10 in one receive; every one seen is ours.
    assert!(!moved_ids.is_empty() && moved_ids.iter().all(|i| want.contains(i)));

    // A queue without a DLQ: a usage error that says so.
    let (plain, _) = create_queue(&sqs, "plain", None).await;
    let (code, _, err) = cli(&["dlq", "redrive", "--queue", &plain], &env[1..]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("no redrive policy"), "{err}");
}
