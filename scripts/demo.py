"""Runs the drainerd demo: moto, a queue + DLQ, jobs, drainerd, progress.

Started by scripts/demo (which installs moto and builds drainerd). Prints a
progress line per second and a summary; leaves nothing running.
"""
import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv", "bin")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, limit=20):
    start = time.time()
    while time.time() - start < limit:
        if proc.poll() is not None:
            sys.exit("moto_server exited early")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("moto_server did not start")


def depth(sqs, url):
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=300, help="prime jobs to enqueue")
    ap.add_argument("--concurrency", type=int, default=4, help="drainerd job slots")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="drainerd-demo-")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    print(f"==> starting the AWS emulator (moto) on {endpoint}")
    moto = subprocess.Popen(
        [os.path.join(VENV, "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    agent = None
    try:
        wait_port(port, moto)
        sqs = boto3.client(
            "sqs", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test",
        )
        dlq = sqs.create_queue(QueueName="demo-jobs-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = sqs.create_queue(
            QueueName="demo-jobs",
            Attributes={"RedrivePolicy": f'{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"3"}}'},
        )["QueueUrl"]
        print(f"==> queue {url} (dead-letter queue after 3 receives)")

        rnd = random.Random(7)
        bodies = ['{"below": %d}' % rnd.randint(10_000, 400_000) for _ in range(args.jobs)]
        bodies[17] = "not a number"  # a poison message: fails, retried, dead-lettered
        for i in range(0, len(bodies), 10):
            sqs.send_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(j), "MessageBody": b} for j, b in enumerate(bodies[i : i + 10])],
            )
        print(f"==> enqueued {len(bodies)} jobs (one poison message among them)")

        config = os.path.join(work, "drainerd.toml")
        with open(config, "w") as f:
            f.write(f"""[queue]
url = "{url}"
endpoint_url = "{endpoint}"
region = "us-east-1"
wait_time = "2s"
lease = "30s"
heartbeat_interval = "10s"

[job]
command = ["{os.path.join(VENV, 'python')}", "{os.path.join(ROOT, 'scripts', 'demo-job.py')}"]
concurrency = {args.concurrency}
timeout = "60s"
retry_backoff_base = "1s"
retry_backoff_max = "4s"

[agent]
drain_timeout = "10s"
""")
        log_path = os.path.join(work, "drainerd.log")
        env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                   AWS_EC2_METADATA_DISABLED="true")
        env.pop("NOTIFY_SOCKET", None)
        print(f"==> starting drainerd ({args.concurrency} job slots); its log: {log_path}")
        log = open(log_path, "w")
        agent = subprocess.Popen(
            [os.path.join(ROOT, "target", "debug", "drainerd"), "run", "--config", config, "--log-format", "text"],
            stdout=log, stderr=log, env=env,
        )
        start = time.time()
        while True:
            time.sleep(1)
            if agent.poll() is not None:
                sys.exit(f"drainerd exited with {agent.returncode}; see {log_path}")
            visible, inflight = depth(sqs, url)
            dead, _ = depth(sqs, dlq)
            with open(log_path) as f:
                text = f.read()
            done = text.count("job finished")
            failed = text.count("job did not succeed")
            bar = "#" * int(30 * done / len(bodies))
            print(f"  {time.time() - start:5.1f}s [{bar:<30}] done {done:4d} · failed attempts {failed} · "
                  f"queued {visible:4d} · in flight {inflight:2d} · dead-lettered {dead}", flush=True)
            if visible == 0 and inflight == 0 and dead >= 1:
                break
            if time.time() - start > 600:
                sys.exit("demo took too long")
        print("==> queue drained; stopping drainerd (SIGTERM)")
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(timeout=60)
        agent = None
        with open(log_path) as f:
            lines = f.read().splitlines()
        print("==> a few of the jobs' own output lines, as drainerd logged them:")
        for line in [l for l in lines if "primes below" in l][:3]:
            print("   ", line[:200])
        for line in lines:
            if "stopped; every message was settled" in line:
                print("   ", line[:300])
        print(f"==> drainerd exited with {code}; {done} jobs succeeded, {dead} message dead-lettered, "
              f"in {time.time() - start:.1f}s")
        if code != 0 or done != len(bodies) - 1 or dead != 1:
            sys.exit("demo: unexpected outcome")
    finally:
        if agent is not None:
            agent.kill()
        moto.terminate()
        moto.wait()


if __name__ == "__main__":
    main()
