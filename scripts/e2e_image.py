"""End to end in a real image: bake it, boot it, let it drain, interrupt it,
watch it leave. Started by scripts/e2e-image (which installs the tools,
builds the package and the base image); see docs/testing.md, "End to end in
an image".

1. bake: `packer build -only=qemu.local` on packer/drainerd-worker.pkr.hcl
   against the cached base image (the Ansible role in bake mode installs the
   .deb; no configuration is baked in);
2. boot 1 (instance A, a member of a moto Auto Scaling group) under QEMU
   (TCG): the metadata simulator answers at 169.254.169.254 inside the
   guest, and moto on the host is 169.254.0.2 from the guest. cloud-init's
   Ec2 datasource reads user-data from the simulator; the user-data writes
   drainerd's configuration and starts it;
3. N short jobs enqueued from the host are drained by the guest (moto: the
   queue is empty, the DLQ too; the guest's journal: one `job finished` per
   message, by MESSAGE_ID);
4. two long jobs run; a spot interruption notice in 2 minutes: both messages
   are visible again in moto before the notice time (the journal:
   OUTCOME=handed_back); then the instance is shut down as EC2 does;
5. boot 2 (instance B, the other group member) with short fleet timers: the
   queue stays empty, drainerd leaves the group (moto: desired capacity
   2 -> 1, B gone from the group) and powers the instance off; the test waits
   for QEMU to exit and reads drainerd's last words from the disk's journal.

Exits non-zero on the first failed step, after saving the guest's journal
(JSON export, drainerd's structured fields included) and serial log in the
artifacts directory. Prints the time each stage took.
"""
import argparse
import calendar
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from common import ROOT, client, start_moto
from e2e_vm import GUEST_HOST, Failed, Sim, Vm, entries, wait_for

QUEUE = "e2e-jobs"
LONG_JOB_SECONDS = 300


def log(msg):
    print(msg, flush=True)


def sqs_counts(sqs, url):
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def user_data(queue_url, endpoint, fleet):
    """cloud-config for one instance: drainerd's configuration, the job
    program, the polkit rule that lets drainerd power off, and a start."""
    config = f"""[queue]
url = "{queue_url}"
region = "us-east-1"
endpoint_url = "{endpoint}"
wait_time = "5s"
lease = "1m"
heartbeat_interval = "20s"

[job]
command = ["/usr/local/bin/e2e-job"]
concurrency = 4
timeout = "10m"
kill_grace = "5s"

[agent]
drain_timeout = "20s"

[metadata]
poll_interval = "1s"
spot_margin = "15s"
spot_signal_jobs = "immediately"

[fleet]
endpoint_url = "{endpoint}"
{fleet}"""
    job = """#!/bin/sh
# One e2e job: the message body is "sleep SECONDS".
read -r verb seconds
[ "$verb" = sleep ] || { echo "bad body: $verb $seconds" >&2; exit 2; }
echo "e2e job started: sleep $seconds"
exec sleep "$seconds"
"""
    rule = """// drainerd powers the instance off after leaving its group (README
// "Leaving the group"): let its user do so, also while others are logged in.
polkit.addRule(function (action, subject) {
    if ((action.id == "org.freedesktop.login1.power-off" ||
         action.id == "org.freedesktop.login1.power-off-multiple-sessions") &&
        subject.user == "drainerd") {
        return polkit.Result.YES;
    }
});
"""

    def block(text):
        return "\n".join("      " + line if line else "" for line in text.splitlines())

    return f"""#cloud-config
write_files:
  - path: /usr/local/bin/e2e-job
    permissions: "0755"
    content: |
{block(job)}
  - path: /etc/polkit-1/rules.d/50-drainerd-poweroff.rules
    permissions: "0644"
    content: |
{block(rule)}
  - path: /etc/drainerd/drainerd.toml
    owner: root:drainerd
    permissions: "0640"
    content: |
{block(config)}
runcmd:
  - [systemctl, start, drainerd.service]
"""


class Run:
    def __init__(self, args):
        self.args = args
        self.timings = []
        self.vms = []
        self.sims = []
        self.procs = []
        self.stage = None

    def timed(self, name, seconds):
        self.timings.append((name, seconds))
        log(f"    {name}: {seconds:.1f} s")

    def bake(self, base_dir, work):
        out = os.path.join(work, "baked")
        cmd = ["packer", "build", "-color=false", "-only=qemu.local",
               "-var", f"qemu_base_image={base_dir}/base.qcow2", "-var", f"qemu_ssh_key={base_dir}/id_ed25519",
               "-var", f"qemu_kernel={base_dir}/vmlinuz", "-var", f"qemu_initrd={base_dir}/initrd.img",
               "-var", f"qemu_output_directory={out}", "packer/"]
        packer_log = os.path.join(work, "packer.log")
        t = time.time()
        with open(packer_log, "w") as f:
            r = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                               env=dict(os.environ, PACKER_CACHE_DIR=os.path.join(work, "packer_cache")))
        if r.returncode != 0:
            shutil.copy(packer_log, self.args.artifacts)
            raise Failed(f"packer build exited {r.returncode}; see {self.args.artifacts}/packer.log")
        self.timed("bake (packer build -only=qemu.local)", time.time() - t)
        return os.path.join(out, "drainerd-worker.qcow2")

    def main(self):
        a = self.args
        base_dir = os.path.join(a.cache, "base")
        os.makedirs(a.cache, exist_ok=True)
        shutil.rmtree(a.artifacts, ignore_errors=True)  # only this run's failure belongs there
        work = tempfile.mkdtemp(prefix="run-", dir=a.cache)
        self.work = work
        t_all = time.time()
        try:
            self.stage = "base image"
            t = time.time()
            subprocess.run([os.path.join(ROOT, "scripts", "e2e-base-image"), base_dir], check=True)
            self.timed("base image (mmdebstrap; 0 s once cached)", time.time() - t)

            self.stage = "bake"
            log("==> bake: packer build -only=qemu.local packer/ (Ansible role in bake mode)")
            baked = self.bake(base_dir, work)

            moto, endpoint = start_moto()
            self.procs.append(moto)
            port = endpoint.rsplit(":", 1)[1]
            guest_endpoint = f"http://{GUEST_HOST}:{port}"
            sqs, asg = client("sqs", endpoint), client("autoscaling", endpoint)
            dlq = sqs.create_queue(QueueName=QUEUE + "-dlq")["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            url = sqs.create_queue(QueueName=QUEUE, Attributes={
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})})["QueueUrl"]
            guest_url = f"{guest_endpoint}/{url.split('/', 3)[3]}"
            client("ec2", endpoint).create_launch_template(
                LaunchTemplateName="e2e-lt", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "m5.large"})
            asg.create_auto_scaling_group(
                AutoScalingGroupName="e2e-workers", LaunchTemplate={"LaunchTemplateName": "e2e-lt"},
                MinSize=1, MaxSize=4, DesiredCapacity=2, AvailabilityZones=["us-east-1a"])

            def group():
                return asg.describe_auto_scaling_groups(AutoScalingGroupNames=["e2e-workers"])["AutoScalingGroups"][0]

            ids = sorted(i["InstanceId"] for i in group()["Instances"])
            log(f"==> moto {endpoint} (guest: {guest_endpoint}): queue {QUEUE} with a DLQ; "
                f"group e2e-workers desired 2 min 1, instances {', '.join(ids)}")

            # Boot 1: instance A. billing "never": it must not leave while the
            # test feeds it work between stages.
            self.stage = "boot 1 to READY"
            sim_a = Sim(ids[0], user_data(guest_url, guest_endpoint, 'billing = "never"\n'), work)
            self.sims.append(sim_a)
            vm = Vm("boot1", baked, base_dir, sim_a, work)
            self.vms.append(vm)
            log(f"==> boot 1: instance {ids[0]} (serial log {vm.serial})")
            self.timed("boot 1 to READY", vm.wait_ready(a.boot_timeout))
            ud_reads = sim_a.call("GET", "/state")["requests"]
            if not any(k.startswith("GET /") and k.endswith("/user-data") for k in ud_reads):
                raise Failed("the simulator served no user-data, yet drainerd started: configuration baked in?")

            self.stage = "drain"
            log(f"==> drain: {a.jobs} short jobs from the host")
            t = time.time()
            sent = set()
            for i in range(0, a.jobs, 10):
                r = sqs.send_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(j), "MessageBody": "sleep 0.2"} for j in range(i, min(i + 10, a.jobs))])
                sent |= {m["MessageId"] for m in r["Successful"]}
            wait_for(f"the guest to drain {a.jobs} messages (moto: 0 visible, 0 in flight)",
                     lambda: sqs_counts(sqs, url) == (0, 0), a.stage_timeout)
            self.timed(f"drain {a.jobs} jobs", time.time() - t)
            if sqs_counts(sqs, dlq) != (0, 0):
                raise Failed(f"dead-letter queue not empty: {sqs_counts(sqs, dlq)}")
            journal = vm.drainerd_journal()
            # The queue URL carries this run's moto port: the configuration
            # came from this run's user-data, not from the image.
            if not entries(journal, "drainerd ready: draining the queue", QUEUE_URL=guest_url):
                raise Failed(f"guest journal: drainerd did not start on {guest_url}")
            finished = {e.get("MESSAGE_ID") for e in entries(journal, "job finished", OUTCOME="succeeded")}
            if not sent <= finished:
                raise Failed(f"guest journal: no 'job finished' (OUTCOME=succeeded) for {len(sent - finished)} "
                             f"of the {len(sent)} messages")
            log(f"    moto: queue and DLQ empty; guest journal: {len(sent)} 'job finished' by MESSAGE_ID")

            self.stage = "interruption"
            log("==> interruption: two long jobs, then a spot notice for 2 minutes ahead")
            long_ids = {sqs.send_message(QueueUrl=url, MessageBody=f"sleep {LONG_JOB_SECONDS}")["MessageId"]
                        for _ in range(2)}
            wait_for("the guest to take both long jobs (moto: 2 in flight)",
                     lambda: sqs_counts(sqs, url) == (0, 2), 60)

            def both_running():
                started = {e.get("MESSAGE_ID") for e in entries(vm.drainerd_journal(), "e2e job started: sleep "
                                                                 f"{LONG_JOB_SECONDS}")}
                return long_ids <= started
            wait_for("both long jobs to start in the guest (journal)", both_running, 60, 2)
            # AWS gives two minutes' warning (aws-facts.md, spot/instance-action).
            state = sim_a.call("POST", "/spot", {"action": "terminate", "in": "2m"})
            t_notice = time.time()
            notice_time = state["spot"]["time"]
            notice_epoch = calendar.timegm(time.strptime(notice_time, "%Y-%m-%dT%H:%M:%SZ"))
            wait_for("both long jobs' messages visible again (moto: 2 visible, 0 in flight)",
                     lambda: sqs_counts(sqs, url) == (2, 0), 110, 0.2)
            t_back = time.time()
            if t_back >= notice_epoch:
                raise Failed(f"messages came back at {t_back:.0f}, after the notice time {notice_time}")
            self.timed("interruption hand-back latency (notice -> both messages visible)", t_back - t_notice)
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                      AttributeNames=["ApproximateReceiveCount"],
                                      MessageAttributeNames=["All"])["Messages"]
            if sorted(m["Body"] for m in got) != [f"sleep {LONG_JOB_SECONDS}"] * 2:
                raise Failed(f"host received {[m['Body'] for m in got]}, expected the two long jobs")
            # Handed back by copy (README, "The job contract"): a new message
            # whose receive count starts again, the interruption counted in
            # an attribute, so the job's retry budget is untouched. (The
            # guest's long poll in flight at the notice may take a copy and
            # hand it back again: a second interruption, never a second run.)
            counts = [int(m["Attributes"]["ApproximateReceiveCount"]) for m in got]
            interruptions = [int(m.get("MessageAttributes", {}).get("drainerd-interruptions", {})
                                 .get("StringValue", "0")) for m in got]
            if counts != [1, 1] or any(i < 1 for i in interruptions):
                raise Failed(f"receive counts {counts}, interruptions {interruptions}: expected copies "
                             "received once, each interruption counted")
            for m in got:  # leave the queue empty for boot 2
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            journal = vm.drainerd_journal()
            runs = [e.get("MESSAGE_ID") for e in entries(journal, f"e2e job started: sleep {LONG_JOB_SECONDS}")]
            if sorted(runs) != sorted(long_ids):
                raise Failed(f"guest journal: the long jobs started {runs}, expected once each {long_ids}")
            if not entries(journal, "spot interruption notice", ACTION="terminate", TIME=notice_time):
                raise Failed(f"guest journal: no 'spot interruption notice' for {notice_time}")
            handed = {e.get("MESSAGE_ID") for e in entries(journal, OUTCOME="handed_back")}
            if not long_ids <= handed:
                raise Failed(f"guest journal: OUTCOME=handed_back missing for {long_ids - handed}")
            if sqs_counts(sqs, dlq) != (0, 0):
                raise Failed("dead-letter queue not empty after the interruption")
            log(f"    handed back {(notice_epoch - t_back):.0f} s before the notice time {notice_time}; "
                "journal: OUTCOME=handed_back for both")
            # EC2 terminates the instance at the notice time with an ACPI
            # shutdown; the test does the same now rather than waiting.
            vm.powerdown()
            vm.wait_exit(120)
            sim_a.stop()

            # Boot 2: instance B, short fleet timers; it finds no work.
            self.stage = "boot 2 to READY"
            fleet = ('billing = "per-second"\nidle_timeout = "10s"\nmin_lifetime = "0s"\n'
                     'check_interval = "2s"\nprotection_linger = "2s"\npoweroff_after = "5s"\n')
            sim_b = Sim(ids[1], user_data(guest_url, guest_endpoint, fleet), work)
            self.sims.append(sim_b)
            vm = Vm("boot2", baked, base_dir, sim_b, work)
            self.vms.append(vm)
            log(f"==> boot 2: instance {ids[1]}, idle timeout 10 s, power off 5 s after leaving")
            self.timed("boot 2 to READY", vm.wait_ready(a.boot_timeout))

            self.stage = "leave"
            before = group()["DesiredCapacity"]
            if before != 2:
                raise Failed(f"desired capacity is {before} before boot 2 could leave; expected 2")
            wait_for("desired capacity decremented in moto", lambda: group()["DesiredCapacity"] == before - 1,
                     a.stage_timeout)
            t_left = time.time()
            g = group()
            if ids[1] in {i["InstanceId"] for i in g["Instances"] if i["LifecycleState"] == "InService"}:
                raise Failed(f"{ids[1]} is still InService in the group after leaving")
            log(f"    moto: desired capacity {before} -> {g['DesiredCapacity']}, {ids[1]} no longer InService")
            # drainerd powers off poweroff_after (5 s) after leaving; the
            # guest's shutdown takes a few seconds more under TCG. (Had
            # drainerd told systemd STOPPING=1 on leaving, systemd would hold
            # the poweroff until its TimeoutStopSec, 120 s, and SIGKILL it.)
            t_exit = vm.wait_exit(60)
            self.timed("leave -> poweroff (desired decremented -> QEMU exited)", t_exit - t_left)
            if "reboot: Power down" not in vm.serial_text():
                raise Failed("QEMU exited but the serial log shows no kernel power-down")
            journal = vm.journal_from_disk(os.path.join(work, "boot2-journal"))
            d = [e for e in journal if e.get("SYSLOG_IDENTIFIER") == "drainerd"]
            if not entries(d, "TerminateInstanceInAutoScalingGroup accepted (desired capacity decremented)"):
                raise Failed("guest journal: drainerd did not log the accepted termination")
            poweroff = [e for e in d if "powering off through systemd" in e.get("MESSAGE", "")]
            failed = [e for e in d if "systemctl poweroff failed" in e.get("MESSAGE", "")
                      or "cannot run systemctl poweroff" in e.get("MESSAGE", "")]
            if not poweroff or failed:
                raise Failed("guest journal: drainerd's poweroff did not happen as logged "
                             f"({len(poweroff)} requests, {len(failed)} failures)")
            log("    guest journal (from the disk): termination accepted, then drainerd powered off")
        except (Failed, subprocess.SubprocessError, OSError) as e:
            log(f"FAIL ({self.stage}): {e}")
            self.collect()
            return 1
        finally:
            for vm in self.vms:
                vm.kill()
            for s in self.sims:
                s.stop()
            for p in self.procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            if not a.keep:  # the disks are large; a failure's logs are in the artifacts
                shutil.rmtree(work, ignore_errors=True)
        total = time.time() - t_all
        log("==> e2e image test passed; stage timings:")
        for name, s in self.timings:
            log(f"    {s:7.1f} s  {name}")
        log(f"    {total:7.1f} s  total")
        return 0

    def collect(self):
        """Artifacts of a failed run: each boot's serial log and journal
        (JSON export over SSH while it runs, else read from its disk)."""
        out = self.args.artifacts
        os.makedirs(out, exist_ok=True)
        for vm in self.vms:
            shutil.copy(vm.serial, os.path.join(out, f"{vm.name}-serial.log"))
            dest = os.path.join(out, f"{vm.name}-journal.json")
            try:
                if not vm.alive():
                    raise Failed("not running")
                text = vm.ssh("journalctl -b -o json --no-pager", timeout=120)
            except (Failed, subprocess.SubprocessError) as e:
                log(f"    {vm.name}: no journal over SSH ({e}); reading it from the disk")
                vm.kill()
                try:
                    text = "\n".join(json.dumps(j) for j in vm.journal_from_disk(
                        os.path.join(self.work, f"{vm.name}-journal-dir")))
                except (subprocess.SubprocessError, OSError) as e2:
                    text = ""
                    log(f"    {vm.name}: no journal from the disk either: {e2}")
            with open(dest, "w") as f:
                f.write(text)
        for s in self.sims:
            if s.proc.poll() is not None:
                continue
            try:
                with open(os.path.join(out, f"imds-sim-{s.control}.json"), "w") as f:
                    json.dump(s.call("GET", "/state"), f, indent=2)
            except OSError:
                pass
        log(f"    artifacts (serial logs, journals as JSON): {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=os.path.join(ROOT, "target", "e2e-cache"))
    ap.add_argument("--artifacts", default=os.path.join(ROOT, "target", "e2e-artifacts"))
    ap.add_argument("--jobs", type=int, default=20, help="short jobs to drain")
    ap.add_argument("--boot-timeout", type=float, default=300)
    ap.add_argument("--stage-timeout", type=float, default=180)
    ap.add_argument("--keep", action="store_true", help="keep the run's work directory (disks, logs)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(Run(args).main())


if __name__ == "__main__":
    main()
