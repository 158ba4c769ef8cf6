//! One job's process: a child in its own process group.
//!
//! The configured argv is exec'd directly (no shell ever sees message
//! content); the body goes into the stdin pipe before the child starts as
//! far as it fits, and the rest from a separate task, so a child that
//! never reads cannot wedge the agent. The process group is signalled as a
//! whole on timeout and on stop, and killed when the job ends or its task is
//! dropped: no job process outlives its job. (If the agent itself is
//! SIGKILLed, systemd's control group reaps the jobs and their messages
//! reappear after the lease.) This module decides nothing about messages.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::watch;
use tokio::time::{sleep_until, timeout, timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use super::output::{forward, LineBudget};
pub use crate::decide::outcome::Exit;
use crate::status::counters::Counters;
use crate::system::clock::Later;
use crate::system::privileges::RunAs;

/// Everything needed to start one job.
pub struct JobSpec {
    pub argv: Vec<String>,
    pub working_dir: Option<PathBuf>,
    /// Another user to run the job as (`job.user`).
    pub run_as: Option<RunAs>,
    /// Variables added to the inherited environment.
    pub env: Vec<(String, String)>,
    pub stdin: bytes::Bytes,
    /// When the job is stopped for running too long.
    pub deadline: Instant,
    pub kill_grace: Duration,
    /// SIGKILL no later than this, whatever `kill_grace` (a spot
    /// interruption's deadline); set by the supervisor while the job runs.
    pub kill_by: watch::Receiver<Option<Instant>>,
    pub message_id: Arc<str>,
    pub line_max: usize,
}

/// The agent's environment as every job inherits it: without the variables
/// the agent must not pass on (systemd's notify channel belongs to the
/// agent, and `DRAINERD_*` configuration overrides are not the job's). The
/// agent's environment does not change, so the list is made once; starting
/// each job from it (rather than from a scrubbed copy of the live
/// environment) spares a parse of the whole environment per job.
fn base_env() -> &'static [(std::ffi::OsString, std::ffi::OsString)] {
    static BASE: std::sync::OnceLock<Vec<(std::ffi::OsString, std::ffi::OsString)>> =
        std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        std::env::vars_os()
            .filter(|(k, _)| {
                !k.to_str().is_some_and(|k| {
                    k.starts_with("DRAINERD_")
                        || matches!(
                            k,
                            "NOTIFY_SOCKET"
                                | "WATCHDOG_USEC"
                                | "WATCHDOG_PID"
                                | "LISTEN_FDS"
                                | "LISTEN_PID"
                        )
                })
            })
            .collect()
    })
}

/// Whether the job's command could start now, as far as can be told
/// without running it: `argv0` is an executable file (a bare name is
/// looked up in `PATH`, as exec does) and `working_dir`, if set, is a
/// directory. For `check-config` and for probing after start failures.
///
/// # Errors
/// What is missing, named.
pub fn can_start(argv0: &str, working_dir: Option<&std::path::Path>) -> Result<(), String> {
    use nix::unistd::{access, AccessFlags};
    if let Some(dir) = working_dir {
        if !dir.is_dir() {
            return Err(format!(
                "working directory {} is not a directory",
                dir.display()
            ));
        }
    }
    let executable = |p: &std::path::Path| p.is_file() && access(p, AccessFlags::X_OK).is_ok();
    if argv0.contains('/') {
        let p = match working_dir {
            Some(dir) if !argv0.starts_with('/') => dir.join(argv0),
            _ => PathBuf::from(argv0),
        };
        return if executable(&p) {
            Ok(())
        } else if p.exists() {
            Err(format!("{argv0} is not an executable file"))
        } else {
            Err(format!("{argv0} does not exist"))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|d| executable(&d.join(argv0))) {
        Ok(())
    } else {
        Err(format!("{argv0} is not an executable in PATH"))
    }
}

/// The child's stdin: a pipe already holding as much of `body` as fits
/// without waiting (all of it up to the pipe's capacity, 64 KiB unless the
/// system is short of pipe memory), plus the write end and the offset of
/// the rest if some is left. Writing ahead spares a task and a reactor
/// registration per job for the usual small body.
fn stdin_pipe(body: &[u8]) -> std::io::Result<(OwnedFd, Option<(OwnedFd, usize)>)> {
    use std::io::{ErrorKind, Write};
    let (reader, fd) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    // Only the write end: the child's end stays blocking.
    let flags = OFlag::from_bits_retain(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    let mut file = std::fs::File::from(fd);
    let mut written = 0;
    while written < body.len() {
        match file.write(&body[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let rest = (written < body.len()).then(|| (OwnedFd::from(file), written));
    Ok((reader, rest))
}

/// Kills the whole group when dropped unless disarmed: covers panics and
/// aborted tasks as well as the normal paths.
struct ProcessGroup {
    pgid: Pid,
    armed: bool,
}

impl ProcessGroup {
    fn signal(&self, sig: Signal) {
        let _ = killpg(self.pgid, sig);
    }
    /// True if any process of the group is still alive.
    fn alive(&self) -> bool {
        killpg(self.pgid, None).is_ok()
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.armed {
            let _ = killpg(self.pgid, Signal::SIGKILL);
        }
    }
}

/// Runs the job to its end. `stop` asks for an early stop (SIGTERM to the
/// group, `kill_grace`, then SIGKILL).
pub async fn run(
    spec: JobSpec,
    stop: CancellationToken,
    budget: Arc<LineBudget>,
    counters: Arc<Counters>,
) -> Exit {
    let (stdin, rest) = match stdin_pipe(&spec.stdin) {
        Ok(p) => p,
        Err(e) => return Exit::SpawnFailed(format!("stdin pipe: {e}")),
    };
    let mut cmd = Command::new(&spec.argv[0]);
    cmd.args(&spec.argv[1..])
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    cmd.env_clear()
        .envs(base_env().iter().map(|(k, v)| (k, v)))
        .envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some(dir) = &spec.working_dir {
        cmd.current_dir(dir);
    }
    if let Some(r) = &spec.run_as {
        // setgid, then setuid, in the child before exec (std's order); the
        // agent has cleared what the child could inherit beyond them
        // (`system::privileges::prepare`).
        cmd.uid(r.uid).gid(r.gid);
    }
    let spawned = cmd.spawn();
    // The Command holds the parent's copy of the stdin pipe's read end:
    // close it, so writing to a child that has exited fails at once.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return Exit::SpawnFailed(format!("{}: {e}", spec.argv[0])),
    };
    let Some(pid) = child.id() else {
        return Exit::SpawnFailed("child exited before its pid was known".into());
    };
    let mut group = ProcessGroup {
        pgid: Pid::from_raw(pid as i32),
        armed: true,
    };

    let stdin_task = rest.map(|(fd, written)| {
        let body = spec.stdin;
        tokio::spawn(async move {
            // EPIPE (the child exited or closed stdin) is the child's choice.
            if let Ok(mut pipe) = tokio::net::unix::pipe::Sender::from_owned_fd(fd) {
                let _ = pipe.write_all(&body[written..]).await;
            }
        })
    });
    // One task reads both streams: it outlives the child when a process
    // that escaped the group holds a pipe open (bounded below).
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let (id, line_max) = (spec.message_id.clone(), spec.line_max);
    let output = tokio::spawn(async move {
        tokio::join!(
            forward_some(out, "stdout", &id, line_max, &budget, &counters),
            forward_some(err, "stderr", &id, line_max, &budget, &counters),
        );
    });

    // biased: a job that has exited is never reported as stopped.
    let exit = tokio::select! {
        biased;
        status = child.wait() => match status {
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                match (s.code(), s.signal()) {
                    (Some(c), _) => Exit::Code(c),
                    (None, Some(sig)) => Exit::Signal(sig),
                    _ => Exit::Code(-1),
                }
            }
            Err(e) => Exit::SpawnFailed(format!("wait failed: {e}")),
        },
        () = sleep_until(spec.deadline) => {
            let kill_by = *spec.kill_by.borrow();
            match terminate(&mut child, &group, spec.kill_grace, kill_by).await {
                Some(0) => Exit::Code(0),
                _ => Exit::TimedOut,
            }
        }
        () = stop.cancelled() => {
            let kill_by = *spec.kill_by.borrow();
            match terminate(&mut child, &group, spec.kill_grace, kill_by).await {
                Some(0) => Exit::Code(0),
                _ => Exit::Stopped,
            }
        }
    };

    // The leader is gone; anything left in its group was left behind (or is
    // a zombie on its way out after our SIGTERM).
    if group.alive() {
        if matches!(exit, Exit::Code(_) | Exit::Signal(_)) {
            tracing::warn!(message_id = %spec.message_id, "job left processes behind in its process group; killing them");
        }
        group.signal(Signal::SIGKILL);
    }
    group.armed = false;

    if let Some(t) = stdin_task {
        t.abort();
    }
    // Let the readers log what the job wrote last; a process that escaped
    // the group could hold the pipe open forever, so don't wait for it.
    let abort = output.abort_handle();
    if timeout(Duration::from_secs(1), output).await.is_err() {
        abort.abort();
    }
    exit
}

/// Forwards `pipe` to the log, if the child has it.
async fn forward_some<R: tokio::io::AsyncRead + Unpin>(
    pipe: Option<R>,
    stream: &'static str,
    id: &Arc<str>,
    line_max: usize,
    budget: &Arc<LineBudget>,
    counters: &Arc<Counters>,
) {
    if let Some(p) = pipe {
        forward(
            p,
            stream,
            id.clone(),
            line_max,
            budget.clone(),
            counters.clone(),
        )
        .await;
    }
}

/// SIGTERM to the group, up to `grace` (but never past `kill_by`) for the
/// leader to exit, then SIGKILL to the group. Returns the leader's exit
/// code if it exited by itself within the grace: exit 0 then is success,
/// whenever it comes.
async fn terminate(
    child: &mut tokio::process::Child,
    group: &ProcessGroup,
    grace: Duration,
    kill_by: Option<Instant>,
) -> Option<i32> {
    group.signal(Signal::SIGTERM);
    let until = Instant::now().later(grace);
    let until = kill_by.map_or(until, |k| k.min(until));
    match timeout_at(until, child.wait()).await {
        Ok(Ok(status)) => status.code(),
        Ok(Err(_)) => None,
        Err(_) => {
            group.signal(Signal::SIGKILL);
            let _ = child.wait().await;
            None
        }
    }
}

#[cfg(test)]
mod tests;
