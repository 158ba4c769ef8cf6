//! The chaos soak, shared by `tests/chaos.rs` (about 1,000 jobs, in the
//! suite) and `examples/chaos.rs` (`scripts/chaos`, 10,000 by default).
//!
//! drainerd (concurrency 8; jobs of 0–200 ms, 1 % longer than the lease so
//! renewals matter) drains a queue in moto through the fault proxy, which
//! resets, fails (500), throttles, slows, and black-holes a share of every
//! API's requests before or after forwarding. Meanwhile the soak, every
//! few seconds: breaks the instance's metadata service (500s, garbage, gone
//! for a while); SIGKILLs the agent with its jobs (as systemd kills a
//! unit's control group) and starts it again; or gives a spot notice and
//! starts a fresh agent on another instance at once (on a real fleet
//! another instance takes over), killing the old one when its instance
//! would go. The queue is fed gradually (moto slows with depth).
//!
//! It counts what a user cares about: every job ran (none lost), how many
//! ran more than once and why, and that the queue and its DLQ end empty.
//! Reruns the chaos explains (a SIGKILL or an instance going away before a
//! delete landed) are expected; reruns while the agent that ran the job
//! lived (its lease ran out) must stay rare: that is how a call stalling a
//! task shows (issue 16), which the SIGKILLs would otherwise mask.
//! Includes `procs.rs` (processes) and needs `crate::faultproxy`.
//!
//! Over 400 lines because the soak is one scenario read top to bottom: the
//! feeding, the chaos and the checks; its process handling is `procs.rs`,
//! its counting `tally.rs`.

#[path = "procs.rs"]
mod procs;
#[path = "tally.rs"]
mod tally;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};

use crate::faultproxy::{Fault, FaultProxy, Rule, Share};
use procs::{now_ns, End, Generation, Sim};
pub use tally::Report;

/// What to run and where the programs are.
#[derive(Debug, Clone)]
pub struct Settings {
    pub jobs: usize,
    pub drainerd: PathBuf,
    pub imds_sim: PathBuf,
    pub moto_server: PathBuf,
    pub seed: u64,
    /// The soak gives up (and fails) after this long.
    pub time_limit: Duration,
    /// Mean time between chaos events (metadata fault, SIGKILL, spot). An
    /// agent lives about 2.5 of these: well beyond a lease, so a stalled
    /// call shows as reruns before the agent is killed.
    pub chaos_every: Duration,
    /// Print progress every few seconds.
    pub progress: bool,
    /// Keep the logs and records when the soak passes (a failed soak
    /// always keeps them).
    pub keep_files: bool,
}

/// The agent's lease: long jobs run longer than this.
const LEASE_SECS: u64 = 8;
/// Visible messages kept in the queue at most (moto slows with depth).
const MAX_VISIBLE: u64 = 200;
/// Seconds from a spot notice to the interruption.
const SPOT_IN_SECS: u64 = 15;

/// splitmix64: reproducible from the seed, no crate needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The network's faults: every API gets resets, 500s, throttling and slow
/// answers; black holes hit the settling, renewing and Auto Scaling calls
/// at 2 % each (as in issue 16) and the long poll at 0.2 % (a black-holed
/// receive stalls intake for the receive's whole bound).
fn network_faults(proxy: &FaultProxy) {
    let calls = [
        "DeleteMessageBatch",
        "DeleteMessage",
        "ChangeMessageVisibilityBatch",
        "ChangeMessageVisibility",
        "GetQueueAttributes",
        "autoscaling",
    ];
    let receive = ["ReceiveMessage"];
    for (fault, share, apis) in [
        (Fault::BlackHoleBefore, 0.02, &calls[..]),
        (Fault::BlackHoleAfter, 0.02, &calls[..]),
        (Fault::BlackHoleBefore, 0.002, &receive[..]),
        (Fault::BlackHoleAfter, 0.002, &receive[..]),
        (Fault::Reset, 0.01, &[][..]),
        (Fault::Error500, 0.01, &[][..]),
        (Fault::Throttle, 0.01, &[][..]),
        (Fault::Slow(Duration::from_millis(1500)), 0.02, &[][..]),
    ] {
        proxy.add(Rule::new(fault, Share::Random(share)).apis(apis));
    }
}

fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
            aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "chaos"),
        ))
        .http_client(drainerd::aws::https_client())
        .build()
}

/// (visible, in flight, delayed).
async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<(u64, u64, u64), String> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .map_err(|e| format!("GetQueueAttributes: {e}"))?;
    let a = out.attributes().cloned().unwrap_or_default();
    let n = |k: QueueAttributeName| a.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok((
        n(QueueAttributeName::ApproximateNumberOfMessages),
        n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        n(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
    ))
}

/// The queue (with a DLQ after 10 receives) and a group of four instances.
async fn world(endpoint: &str) -> Result<(String, String, Vec<String>), String> {
    use aws_sdk_sqs::error::DisplayErrorContext;
    let sqs = aws_sdk_sqs::Client::new(&sdk(endpoint));
    let dlq = sqs
        .create_queue()
        .queue_name("chaos-dlq")
        .send()
        .await
        .map_err(|e| format!("CreateQueue: {}", DisplayErrorContext(e)))?
        .queue_url()
        .unwrap_or_default()
        .to_string();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| format!("GetQueueAttributes: {}", DisplayErrorContext(e)))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    let url = sqs
        .create_queue()
        .queue_name("chaos")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"10"}}"#),
        )
        .send()
        .await
        .map_err(|e| format!("CreateQueue: {}", DisplayErrorContext(e)))?
        .queue_url()
        .unwrap_or_default()
        .to_string();
    let asg = aws_sdk_autoscaling::Client::new(&sdk(endpoint));
    asg.create_launch_configuration()
        .launch_configuration_name("chaos-lc")
        .image_id("ami-12c6146b")
        .instance_type("t3.micro")
        .send()
        .await
        .map_err(|e| format!("CreateLaunchConfiguration: {}", DisplayErrorContext(e)))?;
    asg.create_auto_scaling_group()
        .auto_scaling_group_name("chaos")
        .launch_configuration_name("chaos-lc")
        .min_size(1)
        .max_size(10)
        .desired_capacity(4)
        .availability_zones("us-east-1a")
        .send()
        .await
        .map_err(|e| format!("CreateAutoScalingGroup: {}", DisplayErrorContext(e)))?;
    let out = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("chaos")
        .send()
        .await
        .map_err(|e| format!("DescribeAutoScalingGroups: {}", DisplayErrorContext(e)))?;
    let ids = out
        .auto_scaling_groups()
        .first()
        .map(|g| {
            g.instances()
                .iter()
                .filter_map(|i| i.instance_id().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok((url, dlq, ids))
}

/// The job: one line per finished run, `id receive-count generation
/// start-ns end-ns`, appended (O_APPEND lines this short never interleave).
const JOB: &str = r#"#!/bin/sh
read -r id secs
start=$(date +%s%N)
sleep "$secs"
echo "$id $DRAINERD_RECEIVE_COUNT $CHAOS_GEN $start $(date +%s%N)" >> "$RUNS"
"#;

/// Everything the soak drives.
struct Soak {
    s: Settings,
    dir: PathBuf,
    queue_url: String,
    proxy: FaultProxy,
    instances: Vec<String>,
    job: PathBuf,
    runs: PathBuf,
    gens: Vec<Generation>,
    /// The generation receiving now (the others are dying or dead).
    current: usize,
    /// A spot-interrupted generation and when its instance goes.
    dying: Option<(usize, Instant)>,
    rng: Rng,
    report: Report,
}

impl Soak {
    /// Starts a drainerd generation on instance `slot` (mod the group).
    fn start_agent(&mut self, slot: usize) -> Result<usize, String> {
        let n = self.gens.len() as u32 + 1;
        let instance = self.instances[slot % self.instances.len()].clone();
        let sim = Sim::start(&self.s.imds_sim, &instance)?;
        let cfg = self.dir.join(format!("drainerd-{n}.toml"));
        std::fs::write(&cfg, self.config(&sim.endpoint)).map_err(|e| e.to_string())?;
        let log = self.dir.join(format!("drainerd-{n}.log"));
        let f = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let agent = std::process::Command::new(&self.s.drainerd)
            .args(["run", "--config"])
            .arg(&cfg)
            .args(["--log-format", "text"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "info")
            .env("CHAOS_GEN", n.to_string())
            .env("RUNS", &self.runs)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(f)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.s.drainerd.display()))?;
        self.gens.push(Generation {
            n,
            instance,
            agent,
            sim,
            log,
            end: None,
        });
        Ok(self.gens.len() - 1)
    }

    fn config(&self, metadata: &str) -> String {
        let proxy = &self.proxy.endpoint;
        format!(
            r#"[queue]
url = "{url}"
endpoint_url = "{proxy}"
region = "us-east-1"
wait_time = "2s"
lease = "{LEASE_SECS}s"
heartbeat_interval = "2s"
start_timeout = "60s"

[job]
command = ["{job}"]
concurrency = 8
timeout = "60s"
kill_grace = "1s"
retry_backoff_base = "1s"
retry_backoff_max = "2s"

[agent]
drain_timeout = "5s"

[metadata]
enabled = true
endpoint = "{metadata}"
poll_interval = "1s"
spot_margin = "5s"

[fleet]
endpoint_url = "{proxy}"
billing = "never"
check_interval = "2s"
protection_linger = "3s"

[status]
enabled = false
"#,
            url = self.queue_url,
            job = self.job.display(),
        )
    }

    /// One chaos event, chosen at random.
    fn chaos(&mut self) -> Result<(), String> {
        let roll = self.rng.f64();
        let cur = self.current;
        if roll < 0.5 {
            let (kind, path, body) = match self.rng.next() % 3 {
                0 => ("status500", "/faults", r#"{"status":500,"for":"5s"}"#),
                1 => ("garbage", "/faults", r#"{"garbage":true,"for":"5s"}"#),
                _ => ("down", "/down", r#"{"for":"5s"}"#),
            };
            self.gens[cur].sim.call("POST", path, body)?;
            *self.report.metadata_faults.entry(kind).or_default() += 1;
        } else if roll < 0.8 || self.dying.is_some() {
            self.gens[cur].kill(End::Killed);
            self.report.sigkills += 1;
            let slot = self.slot_of(cur);
            self.current = self.start_agent(slot)?;
        } else {
            let body = format!(r#"{{"action":"terminate","in":"{SPOT_IN_SECS}s"}}"#);
            self.gens[cur].sim.call("POST", "/spot", &body)?;
            self.report.spot_notices += 1;
            self.dying = Some((cur, Instant::now() + Duration::from_secs(SPOT_IN_SECS)));
            let slot = self.slot_of(cur) + 1;
            self.current = self.start_agent(slot)?;
        }
        Ok(())
    }

    fn slot_of(&self, g: usize) -> usize {
        let id = &self.gens[g].instance;
        self.instances.iter().position(|i| i == id).unwrap_or(0)
    }

    /// Generations that exited by themselves; the current one is restarted
    /// (as systemd's Restart= would).
    fn check_exits(&mut self) -> Result<(), String> {
        for i in 0..self.gens.len() {
            if self.gens[i].exited() {
                self.report.exited_by_themselves += 1;
                let g = &self.gens[i];
                self.report.notes.push(format!(
                    "agent {} exited by itself: {:?}\n{}",
                    g.n,
                    g.end,
                    g.log_tail(15)
                ));
                if i == self.current {
                    let slot = self.slot_of(i);
                    self.current = self.start_agent(slot)?;
                }
            }
        }
        Ok(())
    }
}

/// Sends up to `n` more messages (bodies `m<index> <seconds>`).
async fn feed(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    rng: &mut Rng,
    from: usize,
    n: usize,
) -> Result<(), String> {
    let ids: Vec<usize> = (from..from + n).collect();
    for chunk in ids.chunks(10) {
        let mut req = sqs.send_message_batch().queue_url(url);
        for (k, i) in chunk.iter().enumerate() {
            let secs = if rng.f64() < 0.01 {
                format!("{}", LEASE_SECS + 1 + rng.next() % 4)
            } else {
                format!("{:.3}", rng.f64() * 0.2)
            };
            req = req.entries(
                SendMessageBatchRequestEntry::builder()
                    .id(k.to_string())
                    .message_body(format!("m{i:06} {secs}"))
                    .build()
                    .map_err(|e| e.to_string())?,
            );
        }
        let out = req
            .send()
            .await
            .map_err(|e| format!("SendMessageBatch: {e}"))?;
        if !out.failed().is_empty() {
            return Err(format!("SendMessageBatch refused {:?}", out.failed()));
        }
    }
    Ok(())
}

/// Runs the soak and reports. Errors are set-up failures (no moto, ...).
///
/// # Errors
/// A process or the emulator could not be started.
pub async fn run(s: Settings) -> Result<Report, String> {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("drainerd-chaos-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    let (_moto, moto_port) = procs::start_moto(&s.moto_server)?;
    let endpoint = format!("http://127.0.0.1:{moto_port}");
    let (queue_url, dlq_url, instances) = world(&endpoint).await?;
    if instances.is_empty() {
        return Err("moto's group has no instances".into());
    }
    let job = dir.join("job.sh");
    std::fs::write(&job, JOB).map_err(|e| e.to_string())?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&job, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    let proxy = FaultProxy::start_seeded(moto_port, s.seed);
    network_faults(&proxy);
    let mut soak = Soak {
        report: Report::new(&s, dir.clone()),
        rng: Rng(s.seed ^ 0xc4a0_5eed),
        s,
        dir: dir.clone(),
        queue_url: queue_url.clone(),
        proxy,
        instances,
        job,
        runs: dir.join("runs.log"),
        gens: Vec::new(),
        current: 0,
        dying: None,
    };
    soak.current = soak.start_agent(0)?;
    let sqs = aws_sdk_sqs::Client::new(&sdk(&endpoint));
    let mut feed_rng = Rng(soak.s.seed ^ 0xfeed);
    let mut runs = tally::Runs::new(soak.runs.clone());
    let (mut sent, n) = (0usize, soak.s.jobs);
    let mut next_chaos = Instant::now() + soak.s.chaos_every;
    let mut last_progress = Instant::now();
    loop {
        runs.read_new();
        soak.check_exits()?;
        if let Some((g, at)) = soak.dying {
            if Instant::now() >= at {
                soak.gens[g].kill(End::Spot);
                soak.dying = None;
            }
        }
        let d = depth(&sqs, &queue_url).await?;
        if sent < n && d.0 < MAX_VISIBLE / 2 {
            let more = (MAX_VISIBLE - d.0) as usize;
            let more = more.min(n - sent);
            feed(&sqs, &queue_url, &mut feed_rng, sent, more).await?;
            sent += more;
        }
        let all_ran = sent == n && runs.distinct() == n;
        if all_ran && d == (0, 0, 0) {
            break;
        }
        if started.elapsed() > soak.s.time_limit {
            soak.report.timed_out = true;
            break;
        }
        if !all_ran && Instant::now() >= next_chaos {
            soak.chaos()?;
            let jitter = 0.5 + soak.rng.f64();
            next_chaos = Instant::now() + soak.s.chaos_every.mul_f64(jitter);
        }
        if soak.s.progress && last_progress.elapsed() > Duration::from_secs(10) {
            last_progress = Instant::now();
            eprintln!(
                "chaos: {:>4.0} s, sent {sent}/{n}, ran {} ({} runs), queue {d:?}, agent {}, {} SIGKILLs, {} spot notices",
                started.elapsed().as_secs_f64(),
                runs.distinct(),
                runs.total(),
                soak.gens[soak.current].n,
                soak.report.sigkills,
                soak.report.spot_notices
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let mut report = finish(&mut soak, &sqs, &dlq_url, &mut runs, started).await?;
    if report.ok() && !soak.s.keep_files {
        drop(soak);
        let _ = std::fs::remove_dir_all(&report.dir);
        report.dir = PathBuf::from("(removed: the soak passed)");
    }
    Ok(report)
}

/// Ends the chaos, stops the last agent with SIGTERM, and checks the end
/// state.
async fn finish(
    soak: &mut Soak,
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    runs: &mut tally::Runs,
    started: Instant,
) -> Result<Report, String> {
    soak.proxy.clear();
    if let Some((g, _)) = soak.dying.take() {
        soak.gens[g].kill(End::Spot);
    }
    let cur = soak.current;
    let g = &mut soak.gens[cur];
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(g.pid()),
        nix::sys::signal::Signal::SIGTERM,
    );
    let termed = Instant::now();
    let mut exit = None;
    while termed.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(st)) = g.agent.try_wait() {
            exit = Some((st.code(), termed.elapsed()));
            g.end = Some((End::Stopped, now_ns()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if exit.is_none() {
        soak.report.notes.push(format!(
            "the last agent did not exit within 60 s of SIGTERM:\n{}",
            g.log_tail(20)
        ));
        g.kill(End::Stopped);
    }
    soak.report.final_exit = exit;
    runs.read_new();
    let r = &mut soak.report;
    r.queue_left = depth(sqs, &soak.queue_url).await?;
    r.dlq_left = depth(sqs, dlq_url).await?;
    r.wall = started.elapsed();
    r.generations = soak.gens.len();
    r.faults = soak.proxy.faults();
    r.requests = soak.proxy.requests_by_api();
    let ends: BTreeMap<u32, (End, u128)> = soak
        .gens
        .iter()
        .filter_map(|g| g.end.map(|e| (g.n, e)))
        .collect();
    r.tally(runs, &ends);
    if !r.ok() {
        let last = &soak.gens[soak.current];
        r.notes.push(format!(
            "last agent ({}) log:\n{}",
            last.n,
            last.log_tail(30)
        ));
    }
    Ok(soak.report.clone())
}
