//! Real peers for drainerd's integration tests, one file per peer:
//!
//! - `moto`: the AWS emulator (moto server from `.venv`, installed by
//!   `scripts/test`), one per test on its own port, and the SDK clients;
//! - `agent`: the real `drainerd` binary with a config in a temp dir;
//! - `imds`: the metadata simulator;
//! - `proxy`: a TCP relay that can fail every connection, standing in for
//!   an SQS endpoint outage (AWS: SDK calls then fail with dispatch errors);
//! - `faultproxy`: an HTTP proxy in front of moto that resets, fails,
//!   throttles, delays or black-holes a share of the requests, per API
//!   (the network between an instance and AWS misbehaving);
//! - `notify`: a real unix datagram socket as systemd's `NOTIFY_SOCKET`;
//! - `page`: the status page over HTTP and the `/metrics` parser;
//! - `lifecycle`: lifecycle-hook calls moto lacks, answered by a fixture.
//!
//! Here: what every peer's helpers share (ports, waiting, job records).
// Each test binary uses some of these helpers, never all.
#![allow(dead_code, unused_imports)]

pub mod agent;
pub mod faultproxy;
pub mod imds;
pub mod lifecycle;
pub mod moto;
pub mod notify;
pub mod page;
pub mod proxy;

pub use agent::*;
pub use faultproxy::{Fault, FaultProxy, Rule, Share};
pub use imds::*;
pub use moto::*;
pub use notify::*;
pub use page::*;
pub use proxy::*;

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the file at `path` has the line `line` (jobs write what they
/// did there); false after `limit`.
pub async fn line_appears(path: &Path, line: &str, limit: Duration) -> bool {
    eventually(limit, || async {
        read_lines(path).iter().any(|l| l == line).then_some(())
    })
    .await
    .is_some()
}

/// Polls `f` until it returns Some or `limit` passes.
pub async fn eventually<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Lines of a job record file.
pub fn read_lines(p: &Path) -> Vec<String> {
    match std::fs::File::open(p) {
        Ok(f) => std::io::BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Largest number of overlapping [start, end] intervals.
pub fn max_overlap(intervals: &[(u128, u128)]) -> usize {
    let mut ev: Vec<(u128, i32)> = Vec::new();
    for &(s, e) in intervals {
        ev.push((s, 1));
        ev.push((e, -1));
    }
    // Ends sort before starts at the same instant.
    ev.sort();
    let (mut cur, mut best) = (0i32, 0i32);
    for (_, d) in ev {
        cur += d;
        best = best.max(cur);
    }
    best as usize
}
