//! FIFO queues and message groups against moto's FIFO queues: a group's
//! jobs run one at a time, in order; different groups run in parallel; a
//! message that fails blocks its group's later messages until it is
//! retried; jobs see their group id; `drainerd enqueue --group` and
//! `--dedup-id` (and content-based deduplication) work.

mod support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use support::*;

/// A FIFO queue (content-based deduplication on, unless `explicit_ids`),
/// with a DLQ after `max_receives`.
async fn fifo_queue(sqs: &aws_sdk_sqs::Client, name: &str, explicit_ids: bool) -> String {
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(dlq.queue_url().unwrap())
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let mut q = sqs
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"5"}}"#),
        );
    if !explicit_ids {
        q = q.attributes(QueueAttributeName::ContentBasedDeduplication, "true");
    }
    q.send().await.unwrap().queue_url().unwrap().to_string()
}

/// `drainerd enqueue` against moto: (exit code, stdout, stderr).
fn enqueue(endpoint: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = drainerd_cmd();
    cmd.arg("enqueue")
        .args(args)
        .env("DRAINERD_CONFIG", "/nonexistent/drainerd.toml")
        .env("DRAINERD_QUEUE_ENDPOINT_URL", endpoint)
        .env("DRAINERD_QUEUE_REGION", "us-east-1")
        .stdin(Stdio::null());
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Records "<start|end|fail> <body> <group> <ms>" per event; fails the
/// first run of a body ending in "-fail-once".
const JOB: &str = r#"body=$(cat)
now() { date +%s%3N; }
echo "start $body $DRAINERD_MESSAGE_GROUP_ID $(now)" >> "$OUT"
sleep 0.3
case "$body" in
  *-fail-once) if [ "$DRAINERD_RECEIVE_COUNT" = 1 ]; then echo "fail $body $DRAINERD_MESSAGE_GROUP_ID $(now)" >> "$OUT"; exit 1; fi ;;
esac
echo "end $body $DRAINERD_MESSAGE_GROUP_ID $(now)" >> "$OUT""#;

struct Event {
    what: String,
    body: String,
    group: String,
    at: u128,
}

fn events(path: &std::path::Path) -> Vec<Event> {
    read_lines(path)
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Event {
                what: f[0].into(),
                body: f[1].into(),
                group: f[2].into(),
                at: f[3].parse().unwrap(),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_run_in_order_one_at_a_time_and_in_parallel_with_each_other() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let url = fifo_queue(&sqs, "ordered", false).await;
    let wd = Workdir::new();
    let out = wd.path("events");
    // Three groups of four, sent interleaved (content-based deduplication).
    for i in 0..4 {
        for g in ["a", "b", "c"] {
            let (code, _, err) = enqueue(
                &moto.endpoint,
                &["--queue", &url, "--group", g, &format!("{g}-{i}")],
            );
            assert_eq!(code, Some(0), "{err}");
        }
    }
    let job = wd.script("job.sh", JOB);
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        "concurrency = 6",
    );
    let agent = Agent::start(&cfg, &[("OUT", out.to_str().unwrap())]);
    let done = eventually(Duration::from_secs(60), || async {
        (events(&out).iter().filter(|e| e.what == "end").count() == 12).then_some(())
    })
    .await;
    assert!(done.is_some(), "{}", agent.logs());
    let ev = events(&out);
    let mut by_group: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in &ev {
        assert_eq!(
            e.body.split('-').next(),
            Some(e.group.as_str()),
            "jobs see their group id"
        );
        by_group.entry(e.group.as_str()).or_default().push(e);
    }
    for (g, list) in &by_group {
        let order: Vec<String> = list
            .iter()
            .filter(|e| e.what == "start")
            .map(|e| e.body.clone())
            .collect();
        assert_eq!(
            order,
            (0..4).map(|i| format!("{g}-{i}")).collect::<Vec<_>>(),
            "group {g} in order"
        );
        // One at a time: each start comes after the previous end.
        let intervals: Vec<(u128, u128)> = (0..4)
            .map(|i| {
                let body = format!("{g}-{i}");
                let at = |w: &str| {
                    list.iter()
                        .find(|e| e.what == w && e.body == body)
                        .unwrap()
                        .at
                };
                (at("start"), at("end"))
            })
            .collect();
        assert_eq!(
            max_overlap(&intervals),
            1,
            "group {g} one at a time: {intervals:?}"
        );
    }
    let all: Vec<(u128, u128)> = ev
        .iter()
        .filter(|e| e.what == "start")
        .map(|e| {
            let end = ev
                .iter()
                .find(|x| x.what == "end" && x.body == e.body)
                .unwrap()
                .at;
            (e.at, end)
        })
        .collect();
    assert!(max_overlap(&all) >= 2, "groups run in parallel");
    let settled = eventually(Duration::from_secs(10), || async {
        (depth(&sqs, &url).await == (0, 0)).then_some(())
    })
    .await;
    assert!(settled.is_some(), "every message deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_message_blocks_its_group_until_it_is_retried() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let url = fifo_queue(&sqs, "blocking", true).await;
    let wd = Workdir::new();
    let out = wd.path("events");
    for (i, body) in ["f-0", "f-1-fail-once", "f-2", "f-3"].iter().enumerate() {
        let (code, _, err) = enqueue(
            &moto.endpoint,
            &[
                "--queue",
                &url,
                "--group",
                "f",
                "--dedup-id",
                &format!("d{i}"),
                body,
            ],
        );
        assert_eq!(code, Some(0), "{err}");
    }
    let job = wd.script("job.sh", JOB);
    let cfg = wd.config(
        &moto.endpoint,
        &url,
        &[job.to_str().unwrap()],
        "concurrency = 4",
    );
    let agent = Agent::start(&cfg, &[("OUT", out.to_str().unwrap())]);
    let done = eventually(Duration::from_secs(60), || async {
        (events(&out).iter().filter(|e| e.what == "end").count() == 4).then_some(())
    })
    .await;
    assert!(done.is_some(), "{:?}\n{}", read_lines(&out), agent.logs());
    let ev = events(&out);
    let ends: Vec<&str> = ev
        .iter()
        .filter(|e| e.what == "end")
        .map(|e| e.body.as_str())
        .collect();
    assert_eq!(
        ends,
        ["f-0", "f-1-fail-once", "f-2", "f-3"],
        "succeeded in order"
    );
    let failed_at = ev.iter().find(|e| e.what == "fail").unwrap().at;
    let f1_done = ev
        .iter()
        .find(|e| e.what == "end" && e.body == "f-1-fail-once")
        .unwrap()
        .at;
    for later in ["f-2", "f-3"] {
        for s in ev.iter().filter(|e| e.what == "start" && e.body == later) {
            assert!(
                s.at > f1_done,
                "{later} started at {} before f-1 succeeded at {f1_done} (failed at {failed_at})",
                s.at
            );
        }
    }
    let settled = eventually(Duration::from_secs(10), || async {
        (depth(&sqs, &url).await == (0, 0)).then_some(())
    })
    .await;
    assert!(settled.is_some(), "every message deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_refuses_a_fifo_job_without_a_group() {
    let moto = Moto::start();
    let sqs = moto.sqs();
    let url = fifo_queue(&sqs, "needs-group", false).await;
    let (code, _, err) = enqueue(&moto.endpoint, &["--queue", &url, "no group"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("--group"), "{err}");
    // Content-based deduplication: the same body twice is queued once.
    for _ in 0..2 {
        let (code, _, err) = enqueue(
            &moto.endpoint,
            &["--queue", &url, "--group", "g", "same body"],
        );
        assert_eq!(code, Some(0), "{err}");
    }
    assert_eq!(depth(&sqs, &url).await.0, 1);
}
