"""Spot notice reaction benchmark (see scripts/bench-notice)."""
import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime

from common import TARGET, agent_env, client, free_port, queue_toml, start_moto, wait_port


def control(port, method, path, body=""):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read()
    if r.status != 200:
        sys.exit(f"imds-sim {method} {path}: {r.status} {data!r}")
    return json.loads(data)


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def one_run(sqs, endpoint, sim_port, ctl_port, poll, work, n):
    url = sqs.create_queue(QueueName=f"notice-{poll}-{n}")["QueueUrl"]
    config = os.path.join(work, f"run-{poll}-{n}.toml")
    with open(config, "w") as f:
        f.write(queue_toml(url, endpoint) + f"""wait_time = "20s"
[job]
command = ["/bin/sleep", "600"]
concurrency = 2
kill_grace = "1s"
[metadata]
endpoint = "http://127.0.0.1:{sim_port}"
poll_interval = "{poll}s"
spot_margin = "10s"
spot_signal_jobs = "immediately"
[fleet]
endpoint_url = "{endpoint}"
""")
    log_path = config.replace(".toml", ".log")
    env = agent_env()
    agent = subprocess.Popen([os.path.join(TARGET, "drainerd"), "run", "--config", config, "--log-format", "text"],
                             stdout=open(log_path, "w"), stderr=subprocess.STDOUT, env=env)
    try:
        sqs.send_message(QueueUrl=url, MessageBody="a")
        sqs.send_message(QueueUrl=url, MessageBody="b")
        deadline = time.time() + 30
        while True:
            a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            if a["ApproximateNumberOfMessagesNotVisible"] == "2":
                break
            if time.time() > deadline:
                sys.exit(f"jobs never started; see {log_path}")
            time.sleep(0.05)
        time.sleep(poll * (n % 5) / 5)  # spread the notice across the poll cycle
        t0 = time.time()
        control(ctl_port, "POST", "/spot", json.dumps({"action": "terminate", "in": "120s"}))
        while True:
            a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            if a["ApproximateNumberOfMessages"] == "2":
                visible = time.time() - t0
                break
            if time.time() - t0 > 60:
                sys.exit(f"messages never came back; see {log_path}")
            time.sleep(0.02)
        text = open(log_path).read()
        m = re.search(r"^(\S+)Z .*draining: stopped receiving", text, re.M)
        stopped = datetime.fromisoformat(m.group(1) + "+00:00").timestamp() - t0
        got = 0
        for _ in range(5):
            for msg in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                got += 1
                sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
            if got == 2:
                break
        return stopped, visible, 2 - got
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
        control(ctl_port, "POST", "/reset")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="drainerd-bench-notice-")
    sim_port, ctl_port = free_port(), free_port()
    moto, endpoint = start_moto()
    procs = [
        moto,
        subprocess.Popen([os.path.join(TARGET, "imds-sim"), "serve", "--listen", f"127.0.0.1:{sim_port}",
                          "--control", f"127.0.0.1:{ctl_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        wait_port(ctl_port)
        sqs = client("sqs", endpoint)
        print()
        print(f"spot notice reaction, {args.runs} runs per poll interval (2 running jobs each run)")
        for poll in (5, 1):
            results = [one_run(sqs, endpoint, sim_port, ctl_port, poll, work, n) for n in range(args.runs)]
            stopped = [r[0] for r in results]
            visible = [r[1] for r in results]
            lost = sum(r[2] for r in results)
            print(f"  poll {poll}s: (a) receiving stopped  p50 {pct(stopped, 50):5.2f}s  p99 {pct(stopped, 99):5.2f}s")
            print(f"  poll {poll}s: (b) all messages back  p50 {pct(visible, 50):5.2f}s  p99 {pct(visible, 99):5.2f}s"
                  f"   (target p99 <= {poll + 1}s)  lost {lost}")
    finally:
        for p in procs:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
