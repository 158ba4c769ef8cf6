//! Real peers for drainerd's integration tests, in one place.
//!
//! - [`Moto`]: the AWS emulator (moto server from `.venv`, installed by
//!   `scripts/test`), one per test on its own port.
//! - [`Agent`]: the real `drainerd` binary with a config in a temp dir.
//! - [`Proxy`]: a TCP relay that can fail every connection, standing in for
//!   an SQS endpoint outage (AWS: SDK calls then fail with dispatch errors).
//! - [`NotifySocket`]: a real unix datagram socket as systemd's
//!   `NOTIFY_SOCKET`, collecting what drainerd tells systemd.
//! - Job scripts that record what each job saw.
#![allow(dead_code)]

pub mod lifecycle;

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

/// A moto server on loopback, killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Moto {
        let bin = Path::new(ROOT).join(".venv/bin/moto_server");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/test (it installs moto into .venv)",
            bin.display()
        );
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server");
            let mut moto = Moto {
                child,
                port,
                endpoint: format!("http://127.0.0.1:{port}"),
            };
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return moto;
                }
                if moto.child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = moto.child.kill();
        }
        panic!("moto_server did not start");
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        sqs_client(&self.endpoint)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The SDK settings every test client uses: moto at `endpoint`, its test
/// credentials, drainerd's HTTP client.
fn test_sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
            Credentials::new("test", "test", None, None, "tests"),
        ))
        .http_client(drainerd::aws::https_client())
        .build()
}

pub fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&test_sdk(endpoint))
}

/// Creates `name` (and `name-dlq` when `max_receives` is set, with a redrive
/// policy). Returns (queue URL, DLQ URL).
pub async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    max_receives: Option<u32>,
) -> (String, Option<String>) {
    let mut dlq_url = None;
    let mut req = sqs.create_queue().queue_name(name);
    if let Some(n) = max_receives {
        let dlq = sqs
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes()
            .unwrap()[&QueueAttributeName::QueueArn]
            .clone();
        req = req.attributes(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{n}"}}"#),
        );
        dlq_url = Some(dlq);
    }
    let url = req.send().await.unwrap().queue_url().unwrap().to_string();
    (url, dlq_url)
}

pub async fn send(sqs: &aws_sdk_sqs::Client, url: &str, body: &str) -> String {
    sqs.send_message()
        .queue_url(url)
        .message_body(body)
        .send()
        .await
        .unwrap()
        .message_id()
        .unwrap()
        .to_string()
}

/// (visible, in flight) from the queue's approximate counters.
pub async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let a = out.attributes().unwrap();
    let n = |k: QueueAttributeName| a.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0);
    (
        n(QueueAttributeName::ApproximateNumberOfMessages),
        n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// A message as a second consumer sees it: (id, body, receive count).
pub async fn receive_one(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    wait_secs: i32,
) -> Option<(String, String, u32)> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .wait_time_seconds(wait_secs)
        .max_number_of_messages(1)
        .visibility_timeout(30)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .unwrap();
    let m = out.messages().first()?;
    Some((
        m.message_id().unwrap().to_string(),
        m.body().unwrap_or_default().to_string(),
        m.attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
    ))
}

/// Receives as a second consumer until message `id` arrives or `limit`
/// passes. Returns whether it arrived and every message received on the
/// way (each stays invisible for 30 s, so a test must look at these rather
/// than receive them again).
pub async fn receive_until(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    id: &str,
    limit: Duration,
) -> (bool, Vec<(String, String, u32)>) {
    let seen = std::sync::Mutex::new(Vec::new());
    let found = eventually(limit, || async {
        let m = receive_one(sqs, url, 1).await?;
        let hit = (m.0 == id).then_some(());
        seen.lock().unwrap().push(m);
        hit
    })
    .await;
    (found.is_some(), seen.into_inner().unwrap())
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

/// A temp dir with a config file and job scripts.
/// systemd's side of `NOTIFY_SOCKET`: a datagram socket in `wd` and every
/// message drainerd has sent to it so far, in order.
pub struct NotifySocket {
    pub path: PathBuf,
    sock: std::os::unix::net::UnixDatagram,
    pub messages: Vec<String>,
}

impl NotifySocket {
    pub fn bind(wd: &Workdir) -> NotifySocket {
        let path = wd.path("notify.sock");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        NotifySocket {
            path,
            sock,
            messages: Vec::new(),
        }
    }
    /// Waits up to 200 ms for the next message.
    pub fn poll(&mut self) {
        let mut buf = [0u8; 4096];
        if let Ok(n) = self.sock.recv(&mut buf) {
            self.messages
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    /// Takes every message already sent (for after the agent has exited).
    pub fn drain(&mut self) {
        loop {
            let before = self.messages.len();
            self.poll();
            if self.messages.len() == before {
                return;
            }
        }
    }
    pub fn saw(&self, needle: &str) -> bool {
        self.messages.iter().any(|m| m.contains(needle))
    }
}

pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
    /// Writes an executable `sh` script.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.write(name, &format!("#!/bin/sh\n{body}\n"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
    /// A standard config for `queue_url` running `command`; `extra` is
    /// appended inside [job] (use full `[section]` headers after it).
    pub fn config(
        &self,
        endpoint: &str,
        queue_url: &str,
        command: &[&str],
        extra: &str,
    ) -> PathBuf {
        let argv: Vec<String> = command.iter().map(|a| format!("{a:?}")).collect();
        self.write(
            "drainerd.toml",
            &format!(
                "[queue]\nurl = {queue_url:?}\nendpoint_url = {endpoint:?}\nregion = \"us-east-1\"\nwait_time = \"1s\"\nlease = \"10s\"\nheartbeat_interval = \"3s\"\n\n[job]\ncommand = [{}]\nretry_backoff_base = \"1s\"\nretry_backoff_max = \"2s\"\nkill_grace = \"1s\"\n{extra}\n",
                argv.join(", ")
            ),
        )
    }
}

/// The real drainerd binary, killed on drop. Its stderr goes to `log`.
pub struct Agent {
    pub child: Child,
    pub log: PathBuf,
}

pub fn drainerd_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drainerd"));
    c.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        // Tests that need instance metadata turn it on with the simulator.
        .env("DRAINERD_METADATA_ENABLED", "false")
        // Tests of the status page turn it on with a port of their own.
        .env("DRAINERD_STATUS_ENABLED", "false")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .env_remove("WATCHDOG_USEC")
        .env("RUST_LOG", "info");
    c
}

impl Agent {
    pub fn start(config: &Path, envs: &[(&str, &str)]) -> Agent {
        let log = config.with_file_name("drainerd.log");
        let f = std::fs::File::create(&log).unwrap();
        let mut cmd = drainerd_cmd();
        cmd.args(["run", "--config"])
            .arg(config)
            .args(["--log-format", "text"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(f);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Agent {
            child: cmd.spawn().expect("start drainerd"),
            log,
        }
    }
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// Waits for the agent to exit; returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
    pub async fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        eventually(limit, || async {
            self.logs().contains(needle).then_some(())
        })
        .await
        .is_some()
    }
    /// Peak resident memory (VmHWM) in KiB, while running.
    /// CPU time (user + system) the agent has used so far, in ms.
    pub fn cpu_ms(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // USER_HZ is 100 on Linux.
        ticks * 10
    }
    pub fn peak_rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- drainerd log ----\n{}", self.logs());
        }
    }
}

/// Runs drainerd to completion (for config errors): (exit code, stderr).
pub fn run_to_exit(args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = drainerd_cmd();
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code(), err)
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

/// A TCP relay to `target` that can be switched to fail every connection.
/// It counts the connections it sees (moto closes each after one response,
/// so this is the number of requests attempted).
pub struct Proxy {
    pub port: u16,
    pub up: Arc<AtomicBool>,
    pub connections: Arc<AtomicU64>,
}

impl Proxy {
    pub async fn start(target_port: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(AtomicU64::new(0));
        let (u, c) = (up.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                if !u.load(Ordering::SeqCst) {
                    drop(inbound); // reset: the endpoint is "down"
                    continue;
                }
                tokio::spawn(async move {
                    if let Ok(mut out) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        });
        Proxy {
            port,
            up,
            connections,
        }
    }
}

/// The metadata simulator (`imds-sim`, built beside the test binaries),
/// killed on drop.
pub struct ImdsSim {
    child: Child,
    pub endpoint: String,
    pub control: String,
}

impl ImdsSim {
    pub fn start(instance_id: &str) -> ImdsSim {
        // target/<profile>/deps/<test> → target/<profile>/imds-sim
        let exe = std::env::current_exe().unwrap();
        let bin = exe.parent().unwrap().parent().unwrap().join("imds-sim");
        assert!(
            bin.exists(),
            "{} is missing: build it with `cargo build -p imds-sim` (scripts/test does)",
            bin.display()
        );
        let (port, ctl) = (free_port(), free_port());
        let child = Command::new(bin)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--control",
                &format!("127.0.0.1:{ctl}"),
            ])
            .args(["--instance-id", instance_id, "--launched-ago", "10m"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start imds-sim");
        let sim = ImdsSim {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            control: format!("127.0.0.1:{ctl}"),
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(&sim.control).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "imds-sim did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        sim
    }

    /// Calls the control API; returns the JSON answer (panics on non-200).
    pub fn call(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(&self.control).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: sim\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (head, payload) = out.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "{method} {path}: {head}\n{payload}"
        );
        serde_json::from_str(payload).unwrap()
    }

    /// Environment that points drainerd at this simulator.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DRAINERD_METADATA_ENABLED", "true".into()),
            ("DRAINERD_METADATA_ENDPOINT", self.endpoint.clone()),
            ("DRAINERD_METADATA_POLL_INTERVAL", "1s".into()),
        ]
    }
}

impl Drop for ImdsSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `Agent::start` with owned environment pairs.
pub fn start_agent(config: &Path, envs: &[(&str, String)]) -> Agent {
    let refs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Agent::start(config, &refs)
}

/// drainerd with its status page on a free port, once ready: (agent, port).
pub async fn start_with_page(cfg: &Path, mut env: Vec<(&'static str, String)>) -> (Agent, u16) {
    let port = free_port();
    env.push(("DRAINERD_STATUS_ENABLED", "true".into()));
    env.push(("DRAINERD_STATUS_LISTEN", format!("127.0.0.1:{port}")));
    let agent = start_agent(cfg, &env);
    assert!(
        agent
            .wait_log("drainerd ready", Duration::from_secs(20))
            .await,
        "{}",
        agent.logs()
    );
    (agent, port)
}

pub fn asg_client(endpoint: &str) -> aws_sdk_autoscaling::Client {
    aws_sdk_autoscaling::Client::new(&test_sdk(endpoint))
}

/// A group of `size` instances (min 1, max 5) from a launch template
/// (created with boto3 from `.venv`: drainerd has no EC2 client); returns
/// its instance ids.
pub async fn create_group(
    asg: &aws_sdk_autoscaling::Client,
    endpoint: &str,
    name: &str,
    size: i32,
) -> Vec<String> {
    let script = "import boto3, sys\n\
        kw = dict(endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n\
        boto3.client('ec2', **kw).create_launch_template(LaunchTemplateName=sys.argv[2] + '-lt', LaunchTemplateData={'ImageId': 'ami-12c6146b', 'InstanceType': 't3.micro'})\n";
    let out = Command::new(Path::new(ROOT).join(".venv/bin/python"))
        .args(["-c", script, endpoint, name])
        .output()
        .expect("run the venv's python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    asg.create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_template(
            aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                .launch_template_name(format!("{name}-lt"))
                .version("$Latest")
                .build(),
        )
        .min_size(1)
        .max_size(5)
        .desired_capacity(size)
        .availability_zones("us-east-1a")
        .send()
        .await
        .unwrap();
    let out = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .unwrap();
    out.auto_scaling_groups()[0]
        .instances()
        .iter()
        .map(|i| i.instance_id().unwrap().to_string())
        .collect()
}

/// The EC2 state of `instance_id` in moto ("running", "terminated", ...),
/// read with boto3 from `.venv` (drainerd itself never calls EC2).
pub fn ec2_state(endpoint: &str, instance_id: &str) -> String {
    let script = "import boto3, sys\n\
        ec2 = boto3.client('ec2', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n\
        r = ec2.describe_instances(InstanceIds=[sys.argv[2]])\n\
        print(r['Reservations'][0]['Instances'][0]['State']['Name'])\n";
    let out = Command::new(Path::new(ROOT).join(".venv/bin/python"))
        .args(["-c", script, endpoint, instance_id])
        .output()
        .expect("run the venv's python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A DynamoDB client for moto (moto serves DynamoDB on the same port).
pub fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&test_sdk(endpoint))
}

/// One HTTP/1.1 request to drainerd's status server on a fresh connection: (status, headers, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, BTreeMap<String, String>, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = out.split_once("\r\n\r\n").expect("a response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

pub fn get(port: u16, path: &str) -> (u16, BTreeMap<String, String>, String) {
    http(port, "GET", path, &[], "")
}

/// Parses exposition text with prometheus_client's parser; returns
/// `name{label=value,...}` → value for every sample. Fails on text the
/// parser rejects.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let script = "import sys, json\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        out = {}\n\
        for fam in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   for s in fam.samples:\n\
        \x20       labels = ','.join(f'{k}={v}' for k, v in sorted(s.labels.items()))\n\
        \x20       out[f'{s.name}{{{labels}}}'] = s.value\n\
        print(json.dumps(out))\n";
    let mut child = Command::new(Path::new(ROOT).join(".venv/bin/python"))
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the venv's python (scripts/ensure-venv installs prometheus_client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser rejected /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn metric(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("{key} missing from /metrics: {:?}", m.keys()))
}
