//! The real drainerd binary: its working directory, configuration,
//! process and log.

use super::*;

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
