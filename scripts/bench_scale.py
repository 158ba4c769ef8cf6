"""Scale benchmark: are the slots kept busy at any concurrency and latency?

For each concurrency C (8, 32, 128) and SQS request delay D (0, 50 ms,
500 ms, added by a relay in front of moto: every request is a connection,
since moto closes each after one response), drains ROUNDS x C jobs that
each sleep one second, and prints:

- slot utilization: the ideal time (ROUNDS seconds) / the wall time from
  the first job's start to the last job's end;
- SQS requests per job (drainerd's own count, logged when it stops);
- drainerd's CPU per job (its own process, from /proc; the jobs' is
  sleep's) and its peak RSS.

Then 256 concurrent `sleep` jobs: drainerd's CPU and memory while they run.

The free-slot bound: drainerd never receives for a slot that is not free,
so a slot that frees waits at least one request delay for its next
message; with R rounds of S-second jobs and a delay of D, no agent keeping
that rule can beat R·S / (R·S + (R − 1)·D) (73 % at 4 rounds of 1 s jobs
and 500 ms; S / (S + D) = 67 % on a long drain). The script prints that
bound and the share of it reached.

moto is a single-threaded Python emulator and slows with queue depth and
concurrent requests: where its own median answer time (printed per row,
for receives and deletes, the delay excluded) is a sizeable part of the
job time, moto, not drainerd, is the bottleneck.
"""
import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

from common import ROOT, agent_env, client, peak_rss_kib, proc_cpu_ms, queue_toml, start_moto, stop_all

BIN = os.path.join(ROOT, "target", "release", "drainerd")


class Relay:
    """A TCP relay that holds each connection `delay` seconds before
    forwarding it, and counts connections and the time moto took."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.delay = 0.0
        self.connections = 0
        # (action, seconds moto took) per request
        self.answers = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _handle(self, reader, writer):
        self.connections += 1
        await asyncio.sleep(self.delay)
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        action = "?"
        started = time.monotonic()

        async def pipe(r, w, timed):
            nonlocal action
            try:
                while True:
                    data = await r.read(65536)
                    if not data:
                        break
                    if not timed and action == "?":
                        m = re.search(rb"X-Amz-Target: *AmazonSQS\.(\w+)", data, re.I) or re.search(rb"Action=(\w+)", data)
                        action = m.group(1).decode() if m else "other"
                    w.write(data)
                    await w.drain()
            except OSError:
                pass
            finally:
                if timed:
                    self.answers.append((action, time.monotonic() - started))
                try:
                    w.close()
                except OSError:
                    pass

        await asyncio.gather(pipe(reader, up_w, False), pipe(up_r, writer, True))

    def median_ms(self, since, action):
        times = sorted(t for a, t in self.answers[since:] if a == action)
        return times[len(times) // 2] * 1000 if times else float("nan")


def send_jobs(sqs, url, n, body):
    for start in range(0, n, 10):
        entries = [{"Id": str(i), "MessageBody": f"{body} {start + i}"} for i in range(min(10, n - start))]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def run_once(endpoint, relay, concurrency, delay, rounds, seconds, work):
    sqs = client("sqs", endpoint)
    name = f"scale-{concurrency}-{int(delay * 1000)}-{time.time_ns()}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    jobs = concurrency * rounds
    send_jobs(sqs, url, jobs, "job")
    times = os.path.join(work, f"{name}.times")
    script = os.path.join(work, "job.sh")
    with open(script, "w") as f:
        f.write(f'#!/bin/sh\ncat >/dev/null\ns=$(date +%s%N)\nsleep {seconds}\necho "$s $(date +%s%N)" >> "$TIMES"\n')
    os.chmod(script, 0o755)
    config = os.path.join(work, f"{name}.toml")
    with open(config, "w") as f:
        f.write(queue_toml(url, f"http://127.0.0.1:{relay.port}")
                + f'[job]\ncommand = ["{script}"]\nconcurrency = {concurrency}\ntimeout = "1m"\nkill_grace = "5s"\n')
    relay.delay = delay
    answers_before = len(relay.answers)
    log_path = os.path.join(work, f"{name}.log")
    env = agent_env(AWS_EC2_METADATA_DISABLED="true", DRAINERD_METADATA_ENABLED="false",
                    DRAINERD_STATUS_ENABLED="false", RUST_LOG="info", TIMES=times)
    with open(log_path, "w") as log:
        p = subprocess.Popen([BIN, "run", "--config", config, "--log-format", "text"], stdout=log, stderr=log, env=env)
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            done = sum(1 for _ in open(times)) if os.path.exists(times) else 0
            if done >= jobs:
                break
            if p.poll() is not None:
                sys.exit(f"drainerd exited: {open(log_path).read()}")
            time.sleep(0.2)
        cpu = proc_cpu_ms(p.pid)[0]
        rss = peak_rss_kib(p.pid)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    spans = [tuple(int(x) for x in line.split()) for line in open(times)]
    wall = (max(e for _, e in spans) - min(s for s, _ in spans)) / 1e9
    text = open(log_path).read()
    m = re.search(r"sqs_requests_per_job=([0-9.]+)", text)
    receive_ms = relay.median_ms(answers_before, "ReceiveMessage")
    delete_ms = relay.median_ms(answers_before, "DeleteMessageBatch")
    sqs.delete_queue(QueueUrl=url)
    return {
        "utilization": rounds * seconds / wall,
        "wall": wall,
        "requests_per_job": float(m.group(1)) if m else float("nan"),
        "cpu_per_job_ms": cpu / jobs,
        "rss_mib": rss / 1024,
        "receive_ms": receive_ms,
        "delete_ms": delete_ms,
    }


def idle_many(endpoint, relay, jobs, seconds, work):
    """`jobs` concurrent sleep jobs: drainerd's CPU and RSS while they run."""
    sqs = client("sqs", endpoint)
    url = sqs.create_queue(QueueName=f"many-{time.time_ns()}")["QueueUrl"]
    send_jobs(sqs, url, jobs, "sleep")
    config = os.path.join(work, "many.toml")
    with open(config, "w") as f:
        f.write(queue_toml(url, f"http://127.0.0.1:{relay.port}")
                + f'[job]\ncommand = ["/bin/sleep", "{seconds}"]\nconcurrency = {jobs}\n')
    relay.delay = 0
    log_path = os.path.join(work, "many.log")
    env = agent_env(AWS_EC2_METADATA_DISABLED="true", DRAINERD_METADATA_ENABLED="false",
                    DRAINERD_STATUS_ENABLED="false", RUST_LOG="info")
    with open(log_path, "w") as log:
        p = subprocess.Popen([BIN, "run", "--config", config, "--log-format", "text"], stdout=log, stderr=log, env=env)
    try:
        started = time.time()
        while time.time() - started < 60:
            running = len(re.findall(r"job finished", open(log_path).read()))
            inflight = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
            if int(inflight["Attributes"]["ApproximateNumberOfMessagesNotVisible"]) >= jobs and running == 0:
                break
            time.sleep(0.2)
        cpu0, t0 = proc_cpu_ms(p.pid)[0], time.time()
        time.sleep(seconds / 2)
        cpu1, t1 = proc_cpu_ms(p.pid)[0], time.time()
        rss = peak_rss_kib(p.pid)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    return (cpu1 - cpu0) / (t1 - t0) / 10, rss / 1024  # percent of one core, MiB


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", default="8,32,128")
    ap.add_argument("--delay-ms", default="0,50,500")
    ap.add_argument("--rounds", type=int, default=4, help="jobs = rounds x concurrency")
    ap.add_argument("--job-seconds", type=float, default=1.0)
    ap.add_argument("--many", type=int, default=256, help="concurrent sleep jobs for the last measure (0: skip)")
    args = ap.parse_args()
    procs = []
    try:
        moto, endpoint = start_moto()
        procs.append(moto)
        relay = Relay(int(endpoint.rsplit(":", 1)[1]))
        with tempfile.TemporaryDirectory() as work:
            print(f"{'slots':>5} {'delay':>6} {'utilization':>11} {'wall':>7} {'SQS req/job':>11} "
                  f"{'CPU ms/job':>10} {'peak RSS':>9} {'bound':>6} {'of bound':>8} "
                  f"{'moto: receive':>13} {'delete':>7}")
            for c in (int(x) for x in args.concurrency.split(",")):
                for d in (int(x) for x in args.delay_ms.split(",")):
                    r = run_once(endpoint, relay, c, d / 1000, args.rounds, args.job_seconds, work)
                    r_s = args.rounds * args.job_seconds
                    bound = r_s / (r_s + (args.rounds - 1) * d / 1000)
                    print(f"{c:>5} {d:>4}ms {r['utilization'] * 100:>10.0f}% {r['wall']:>6.1f}s "
                          f"{r['requests_per_job']:>11.3f} {r['cpu_per_job_ms']:>10.2f} "
                          f"{r['rss_mib']:>7.1f}Mi {bound * 100:>5.0f}% {r['utilization'] / bound * 100:>7.0f}% "
                          f"{r['receive_ms']:>11.0f}ms {r['delete_ms']:>5.0f}ms", flush=True)
            if args.many:
                cpu, rss = idle_many(endpoint, relay, args.many, 20, work)
                print(f"{args.many} concurrent sleep jobs: drainerd at {cpu:.2f}% of a core, peak RSS {rss:.1f} MiB")
    finally:
        stop_all(procs)


if __name__ == "__main__":
    main()
