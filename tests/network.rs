//! A network that stops answering (issue 16): drainerd against moto through
//! the fault proxy (`support/faultproxy.rs`), which resets, delays or
//! black-holes a share of the requests. Each path that talks to AWS must
//! complete while some of its calls never answer: deletes, lease renewals,
//! hand-backs at SIGTERM and at a spot notice, leaving the group, the group
//! lookup at boot, completing the lifecycle hook only once every message is
//! settled, and the watchdog going on while the network is black-holed.

mod support;

#[path = "network/drain.rs"]
mod drain;
#[path = "network/fleet.rs"]
mod fleet;
#[path = "network/framing.rs"]
mod framing;
#[path = "network/watchdog.rs"]
mod watchdog;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use support::*;

/// Records one line per run: `<body> <receive count>`. `SLEEP` (seconds)
/// is the run time; `long` bodies sleep `LONG` instead.
const RECORDER: &str = r#"body=$(cat)
if [ "${body#long}" != "$body" ]; then sleep "${LONG:-300}"; else sleep "${SLEEP:-0.1}"; fi
echo "$body $DRAINERD_RECEIVE_COUNT" >> "$OUT"
"#;

/// Runs per message body, from the recorder's file.
fn runs(out: &Path) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for l in read_lines(out) {
        let body = l.split_whitespace().next().unwrap_or_default().to_string();
        *n.entry(body).or_default() += 1;
    }
    n
}

/// Runs beyond the first, over every message.
fn duplicates(runs: &BTreeMap<String, usize>) -> usize {
    runs.values().map(|r| r - 1).sum()
}

/// Sends `n` messages `<prefix>-<i>` in batches of ten; returns the bodies.
async fn send_many(sqs: &aws_sdk_sqs::Client, url: &str, prefix: &str, n: usize) -> Vec<String> {
    let bodies: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    for chunk in bodies.chunks(10) {
        let mut req = sqs.send_message_batch().queue_url(url);
        for (i, b) in chunk.iter().enumerate() {
            req = req.entries(
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(b)
                    .build()
                    .unwrap(),
            );
        }
        let out = req.send().await.unwrap();
        assert!(out.failed().is_empty(), "{:?}", out.failed());
    }
    bodies
}

/// The recorder job in `wd` and a config for it against `endpoint` (the
/// proxy), with `lease` / `heartbeat` replacing the standard ones.
fn recorder_config(
    wd: &Workdir,
    endpoint: &str,
    url: &str,
    lease: &str,
    heartbeat: &str,
    extra: &str,
) -> (PathBuf, PathBuf) {
    let job = wd.script("job.sh", RECORDER);
    let cfg = wd.config(endpoint, url, &[job.to_str().unwrap()], extra);
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("lease = \"10s\"", &format!("lease = \"{lease}\""))
        .replace(
            "heartbeat_interval = \"3s\"",
            &format!("heartbeat_interval = \"{heartbeat}\""),
        );
    std::fs::write(&cfg, text).unwrap();
    (cfg, wd.path("runs.log"))
}

/// What the proxy saw, for a failure message.
fn seen(proxy: &FaultProxy) -> String {
    format!(
        "requests {:?}, faults {:?}",
        proxy.requests_by_api(),
        proxy.faults()
    )
}

/// The last lines of an agent's log (its whole log is printed when a test
/// fails, by `Agent`'s drop).
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

/// Which of `bodies` another consumer does not find in the queue now (a
/// handed-back message may come back as a copy: a new id, the same body).
/// Receiving hides what it finds for 30 s: call it last.
async fn missing_bodies(sqs: &aws_sdk_sqs::Client, url: &str, bodies: &[String]) -> Vec<String> {
    let mut missing: Vec<String> = bodies.to_vec();
    while !missing.is_empty() {
        let Some((_, body, _)) = receive_one(sqs, url, 2).await else {
            break;
        };
        missing.retain(|b| *b != body);
    }
    missing
}
