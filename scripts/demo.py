"""Runs the drainerd demo: moto, a queue + DLQ, jobs, two instances.

Instance A (drainerd + its own metadata simulator) starts draining a few
hundred prime-counting jobs. A few seconds in, the demo gives A a spot
interruption notice with the simulator's one command (printed, so you can
do it by hand). A stops receiving, lets short jobs finish, stops the slow
ones and hands their messages back; instance B takes over and finishes the
queue. Both are members of an Auto Scaling group (in the emulator); once
the queue is empty and B has been idle a few seconds, B removes itself
from the group, decrementing its desired capacity. Started by
scripts/demo; leaves nothing running.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from common import ROOT, TARGET, VENV, agent_env, client, free_port, queue_toml, start_moto, stop_all, wait_port


def depth(sqs, url):
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


class Instance:
    """One simulated worker instance: a metadata simulator and drainerd."""

    def __init__(self, name, instance_id, work, url, endpoint, concurrency, procs):
        self.name = name
        self.metadata_port, self.control_port = free_port(), free_port()
        self.status_port = free_port()
        sim = subprocess.Popen(
            [os.path.join(TARGET, "imds-sim"), "serve",
             "--listen", f"127.0.0.1:{self.metadata_port}", "--control", f"127.0.0.1:{self.control_port}",
             "--instance-id", instance_id, "--launched-ago", "3m"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(sim)
        wait_port(self.control_port, sim, "imds-sim")
        config = os.path.join(work, f"drainerd-{name}.toml")
        with open(config, "w") as f:
            f.write(queue_toml(url, endpoint) + f"""wait_time = "2s"
lease = "30s"
heartbeat_interval = "10s"

[job]
command = ["{os.path.join(VENV, 'python')}", "{os.path.join(ROOT, 'scripts', 'demo-job.py')}"]
concurrency = {concurrency}
timeout = "60s"
kill_grace = "5s"
retry_backoff_base = "1s"
retry_backoff_max = "4s"

[agent]
drain_timeout = "10s"

[metadata]
endpoint = "http://127.0.0.1:{self.metadata_port}"
poll_interval = "1s"
spot_margin = "10s"

[fleet]
endpoint_url = "{endpoint}"
idle_timeout = "5s"
min_lifetime = "0s"
check_interval = "1s"
protection_linger = "2s"

[status]
listen = "127.0.0.1:{self.status_port}"
refresh_interval = "2s"
""")
        self.log_path = os.path.join(work, f"drainerd-{name}.log")
        env = agent_env()
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [os.path.join(TARGET, "drainerd"), "run", "--config", config, "--log-format", "text"],
            stdout=log, stderr=log, env=env)
        procs.append(self.proc)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def status(self):
        url = f"http://127.0.0.1:{self.status_port}/status.json"
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())

    def counts(self):
        text = self.log()
        return text.count("job finished"), text.count('outcome="handed_back"'), text.count('outcome="failed"')


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=300, help="prime jobs to enqueue")
    ap.add_argument("--concurrency", type=int, default=4, help="job slots per instance")
    ap.add_argument("--interrupt-after", type=float, default=4, help="seconds until instance A gets a spot notice")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="drainerd-demo-")
    procs = []
    moto, endpoint = start_moto()
    procs.append(moto)
    print(f"==> started the AWS emulator (moto) on {endpoint}")
    try:
        sqs = client("sqs", endpoint)
        dlq = sqs.create_queue(QueueName="demo-jobs-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = sqs.create_queue(
            QueueName="demo-jobs",
            Attributes={"RedrivePolicy": f'{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"3"}}'},
        )["QueueUrl"]
        print(f"==> queue {url} (dead-letter queue after 3 receives)")

        rnd = random.Random(7)
        bodies = [json.dumps({"below": rnd.randint(10_000, 400_000)}) for _ in range(args.jobs)]
        for i in (0, 1, 2):  # slow jobs: running when the interruption comes
            bodies[i] = json.dumps({"below": 100_000, "sleep": 15})
        bodies[17] = "not a number"  # a poison message: fails, retried, dead-lettered
        for i in range(0, len(bodies), 10):
            sqs.send_message_batch(QueueUrl=url, Entries=[
                {"Id": str(j), "MessageBody": b} for j, b in enumerate(bodies[i: i + 10])])
        print(f"==> enqueued {len(bodies)} jobs (3 slow ones, 1 poison message)")

        asg = client("autoscaling", endpoint)
        asg.create_launch_configuration(LaunchConfigurationName="demo-lc", ImageId="ami-12c6146b",
                                        InstanceType="t3.micro")
        asg.create_auto_scaling_group(AutoScalingGroupName="demo-workers", LaunchConfigurationName="demo-lc",
                                      MinSize=1, MaxSize=4, DesiredCapacity=2, AvailabilityZones=["us-east-1a"])
        ids = [i["InstanceId"] for i in asg.describe_auto_scaling_groups(
            AutoScalingGroupNames=["demo-workers"])["AutoScalingGroups"][0]["Instances"]]
        print(f"==> Auto Scaling group demo-workers: desired 2, min 1, instances {', '.join(ids)}")

        def desired():
            return asg.describe_auto_scaling_groups(
                AutoScalingGroupNames=["demo-workers"])["AutoScalingGroups"][0]["DesiredCapacity"]

        a = Instance("A", ids[0], work, url, endpoint, args.concurrency, procs)
        print(f"==> instance A: drainerd ({args.concurrency} slots) with its metadata simulator; log {a.log_path}")
        print(f"    status page http://127.0.0.1:{a.status_port}/  (also /status.json, /metrics)")
        b = None
        start = time.time()
        interrupted = False
        while True:
            time.sleep(1)
            for inst in (a, b):
                if inst and inst.proc.poll() is not None:
                    sys.exit(f"drainerd {inst.name} exited with {inst.proc.returncode}; see {inst.log_path}")
            elapsed = time.time() - start
            if not interrupted and elapsed >= args.interrupt_after:
                cmd = [os.path.join(TARGET, "imds-sim"), "interrupt", "--control",
                       f"127.0.0.1:{a.control_port}", "--in", "25s"]
                print(f"==> spot interruption for A in 25 s:  {' '.join(cmd[1:])}")
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                interrupted = True
                b = Instance("B", ids[1], work, url, endpoint, args.concurrency, procs)
                print(f"==> instance B starts to take over; log {b.log_path}")
                print(f"    status page http://127.0.0.1:{b.status_port}/")
            visible, inflight = depth(sqs, url)
            dead, _ = depth(sqs, dlq)
            ad, ah, _ = a.counts()
            bd = b.counts()[0] if b else 0
            done = ad + bd
            bar = "#" * int(30 * done / len(bodies))
            state = "draining (spot notice)" if "draining: stopped receiving" in a.log() else "receiving"
            print(f"  {elapsed:5.1f}s [{bar:<30}] A done {ad:3d} handed back {ah} ({state}) · B done {bd:3d} · "
                  f"queued {visible:3d} · in flight {inflight:2d} · dead-lettered {dead}", flush=True)
            if interrupted and visible == 0 and inflight == 0 and dead >= 1 and done >= len(bodies) - 1:
                break
            if elapsed > 300:
                sys.exit("demo took too long")
        # The first view wakes the page's background refresh of queue and
        # group figures; the next views show them.
        st = b.status()
        for _ in range(50):
            if st["queue"]["as_of"] and st["fleet"]["group"]:
                break
            time.sleep(0.1)
            st = b.status()
        print(f"==> B's /status.json: {st['jobs']['succeeded']} succeeded, {st['jobs']['failed']} failed; "
              f"queue visible {st['queue']['visible']}, dead-letter {st['queue']['dlq_visible']}; "
              f"group {st['fleet']['group']} desired {st['fleet']['desired']}; "
              f"fleet logic: {st['fleet']['verdict']} ({st['fleet']['reason']})")
        print(f"==> queue drained; instance B leaves its group once idle for 5 s (group desired now {desired()})")
        while "left the Auto Scaling group" not in b.log():
            time.sleep(1)
            if time.time() - start > 400:
                sys.exit("B did not leave its group")
        for line in b.log().splitlines():
            if "fleet decision" in line or "TerminateInstanceInAutoScalingGroup" in line or "left the Auto Scaling group" in line:
                print("   ", line[:220])
        left_desired = desired()
        print(f"==> B left the group: desired capacity now {left_desired}; stopping both instances (SIGTERM)")
        for inst in (a, b):
            inst.proc.send_signal(signal.SIGTERM)
        codes = [inst.proc.wait(timeout=60) for inst in (a, b)]
        print("==> what instance A logged about the interruption:")
        for line in a.log().splitlines():
            if any(k in line for k in ("spot interruption", "draining:", "drain deadline", "got SIGTERM", "handed_back")):
                print("   ", line[:220])
        ad, ah, _ = a.counts()
        bd = b.counts()[0]
        print(f"==> A: {ad} jobs done, {ah} handed back before its interruption; B: {bd} jobs done; "
              f"{dead} message dead-lettered; exits {codes}; {time.time() - start:.1f}s")
        if codes != [0, 0] or ad + bd != len(bodies) - 1 or dead != 1 or ah < 1 or left_desired != 1:
            sys.exit("demo: unexpected outcome")
    finally:
        stop_all(procs)


if __name__ == "__main__":
    main()
