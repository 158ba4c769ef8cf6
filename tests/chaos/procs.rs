//! The soak's processes: moto, one metadata simulator and one drainerd
//! per "instance generation", and killing a generation the way its
//! platform would (systemd's control-group kill, or the instance going
//! away), found through /proc since jobs run in process groups of their own.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port()
}

pub fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

fn wait_port(port: u16, child: &mut Child, what: &str) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(s)) = child.try_wait() {
            return Err(format!("{what} exited at start: {s}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{what} did not listen on {port} within 20 s"))
}

/// A child process killed (and reaped) on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// moto server on a free port.
pub fn start_moto(bin: &Path) -> Result<(Proc, u16), String> {
    let port = free_port();
    let mut child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e} (run scripts/ensure-venv)", bin.display()))?;
    wait_port(port, &mut child, "moto_server")?;
    Ok((Proc(child), port))
}

/// The metadata simulator for one instance.
pub struct Sim {
    _proc: Proc,
    pub endpoint: String,
    control: String,
}

impl Sim {
    pub fn start(bin: &Path, instance_id: &str) -> Result<Sim, String> {
        let (port, ctl) = (free_port(), free_port());
        let mut child = Command::new(bin)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--control", &format!("127.0.0.1:{ctl}")])
            .args(["--instance-id", instance_id, "--launched-ago", "10m"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        wait_port(ctl, &mut child, "imds-sim")?;
        wait_port(port, &mut child, "imds-sim")?;
        Ok(Sim {
            _proc: Proc(child),
            endpoint: format!("http://127.0.0.1:{port}"),
            control: format!("127.0.0.1:{ctl}"),
        })
    }

    /// A control API call; the answer's body, or why it failed.
    pub fn call(&self, method: &str, path: &str, body: &str) -> Result<String, String> {
        let mut s = std::net::TcpStream::connect(&self.control).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: sim\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        let (head, payload) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        if head.starts_with("HTTP/1.1 200") {
            Ok(payload.to_string())
        } else {
            Err(format!("{method} {path}: {head}"))
        }
    }
}

/// How a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// SIGKILLed with its jobs (a crash, the OOM killer, systemd's kill).
    Killed,
    /// Its instance went away at a spot interruption.
    Spot,
    /// SIGTERM at the end of the soak.
    Stopped,
    /// It exited by itself (with this code).
    Exited(Option<i32>),
}

/// One drainerd on one (simulated) instance.
pub struct Generation {
    pub n: u32,
    pub instance: String,
    pub agent: Child,
    pub sim: Sim,
    pub log: PathBuf,
    /// How and when (ns since the epoch) it ended.
    pub end: Option<(End, u128)>,
}

impl Generation {
    pub fn pid(&self) -> i32 {
        self.agent.id() as i32
    }

    /// Has it exited by itself? Records that once.
    pub fn exited(&mut self) -> bool {
        if self.end.is_some() {
            return false;
        }
        match self.agent.try_wait() {
            Ok(Some(s)) => {
                self.end = Some((End::Exited(s.code()), now_ns()));
                true
            }
            _ => false,
        }
    }

    /// Kills the agent and every process under it at once (as systemd
    /// kills a unit's control group), then reaps it.
    pub fn kill(&mut self, why: End) {
        if self.end.is_none() {
            kill_tree(self.pid());
            let _ = self.agent.wait();
            self.end = Some((why, now_ns()));
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        if self.end.is_none() {
            kill_tree(self.pid());
            let _ = self.agent.wait();
        }
    }
}

/// Parent of every process, from /proc.
fn parents() -> HashMap<i32, i32> {
    let mut map = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return map;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parens.
        if let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
        {
            map.insert(pid, ppid);
        }
    }
    map
}

/// `root` and every process below it.
fn tree(root: i32) -> BTreeSet<i32> {
    let parents = parents();
    let mut found = BTreeSet::from([root]);
    loop {
        let more: Vec<i32> = parents
            .iter()
            .filter(|(p, pp)| found.contains(pp) && !found.contains(p))
            .map(|(p, _)| *p)
            .collect();
        if more.is_empty() {
            return found;
        }
        found.extend(more);
    }
}

/// Stops the tree (so nothing forks meanwhile), looks again for anything
/// started before the stop took hold, then SIGKILLs all of it.
pub fn kill_tree(root: i32) {
    let mut all = BTreeSet::new();
    for _ in 0..3 {
        let now = tree(root);
        if now.is_subset(&all) {
            break;
        }
        for &p in now.difference(&all) {
            let _ = kill(Pid::from_raw(p), Signal::SIGSTOP);
        }
        all.extend(now);
    }
    for &p in &all {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
}
