"""Helpers shared by the demo and the benchmark scripts: free ports, the
local AWS emulator (moto from ./.venv) and boto3 clients for it."""
import os
import socket
import subprocess
import sys
import time

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv", "bin")
TARGET = os.path.join(ROOT, "target", "debug")


TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")


def proc_cpu_ms(pid):
    """(own CPU ms, reaped children's CPU ms) from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) * TICK_MS, (cutime + cstime) * TICK_MS


def peak_rss_kib(pid):
    """Peak resident set size (VmHWM) of a live process, KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, what="server", limit=20):
    start = time.time()
    while time.time() - start < limit:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"{what} exited early")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not start on port {port}")


def start_moto(keep_alive=False):
    """Starts moto on a free port; returns (process, endpoint URL).
    `keep_alive`: serve many requests per connection, as AWS does
    (scripts/moto_keepalive.py)."""
    port = free_port()
    if keep_alive:
        cmd = [os.path.join(VENV, "gunicorn"), "--chdir", os.path.join(ROOT, "scripts"), "-k", "gthread",
               "--threads", "16", "--keep-alive", "75", "-b", f"127.0.0.1:{port}", "moto_keepalive:app"]
    else:
        cmd = [os.path.join(VENV, "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc, "moto_server")
    return proc, f"http://127.0.0.1:{port}"


def client(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def agent_env(**extra):
    """The environment drainerd runs in against moto: moto's test
    credentials, no systemd notify socket, plus `extra`."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", **extra)
    env.pop("NOTIFY_SOCKET", None)
    return env


def queue_toml(url, endpoint):
    """drainerd's [queue] section for queue `url` in moto at `endpoint`."""
    return f'[queue]\nurl = "{url}"\nendpoint_url = "{endpoint}"\nregion = "us-east-1"\n'


def stop_all(procs):
    """Kills what a script started that is still running, newest first."""
    for p in reversed(procs):
        if p.poll() is None:
            p.kill()
            p.wait()
