"""End to end in a real image: bake it, boot it, let it drain, interrupt it,
watch it leave. Started by scripts/e2e-image (which installs the tools,
builds the package and the base image); see README "End to end in an image".

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
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

from common import ROOT, TARGET, client, free_port, start_moto, wait_port

GUEST_HOST = "169.254.0.2"  # the host as the guest sees it (QEMU user networking)
QUEUE = "e2e-jobs"
LONG_JOB_SECONDS = 300
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Failed(Exception):
    """A step's check failed; the message says what was expected and seen."""


def log(msg):
    print(msg, flush=True)


def wait_for(what, check, timeout, interval=0.5):
    """Polls `check` until it returns something truthy; returns it."""
    deadline = time.time() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.time() > deadline:
            raise Failed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


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


class Sim:
    """The metadata simulator for one instance (imds-sim on the host)."""

    def __init__(self, instance_id, user_data_text, work):
        self.port, self.control = free_port(), free_port()
        ud = os.path.join(work, f"user-data-{instance_id}.yaml")
        with open(ud, "w") as f:
            f.write(user_data_text)
        self.proc = subprocess.Popen(
            [os.path.join(TARGET, "imds-sim"), "serve", "--listen", f"127.0.0.1:{self.port}",
             "--control", f"127.0.0.1:{self.control}", "--instance-id", instance_id,
             "--user-data-file", ud],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.control, self.proc, "imds-sim")

    def call(self, method, path, body=None):
        import urllib.request
        req = urllib.request.Request(f"http://127.0.0.1:{self.control}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Vm:
    """One boot of the baked image under QEMU (TCG): a copy-on-write overlay
    on the baked disk, the simulator behind 169.254.169.254, SSH forwarded
    to the host for collecting the journal."""

    def __init__(self, name, baked, base_dir, sim, work):
        self.name = name
        self.work = work
        self.key = os.path.join(base_dir, "id_ed25519")
        self.disk = os.path.join(work, f"{name}.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", baked, self.disk],
                       check=True)
        self.serial = os.path.join(work, f"{name}-serial.log")
        self.qmp = os.path.join(work, f"{name}-qmp.sock")
        self.ssh_port = free_port()
        # An EC2 identity in the DMI tables (product UUID and serial starting
        # with "ec2", vendor "Amazon EC2"): cloud-init and its ds-identify take
        # the machine for AWS, as on a Nitro instance, and so speak IMDSv2.
        ec2_uuid = "ec2" + str(uuid.uuid4())[3:]
        net = (f"user,id=n0,net=169.254.0.0/16,host={GUEST_HOST},"
               f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22,"
               # The cmd: form runs nc once per connection (the tcp: form
               # serves one connection only).
               f"guestfwd=tcp:169.254.169.254:80-cmd:nc 127.0.0.1 {sim.port}")
        cmd = ["qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-smp", "2",
               "-display", "none", "-monitor", "none", "-no-reboot",
               "-serial", f"file:{self.serial}", "-qmp", f"unix:{self.qmp},server=on,wait=off",
               "-kernel", os.path.join(base_dir, "vmlinuz"), "-initrd", os.path.join(base_dir, "initrd.img"),
               "-append", "root=/dev/vda rw console=ttyS0 ci.ds=Ec2",
               "-drive", f"file={self.disk},if=virtio,format=qcow2",
               "-netdev", net, "-device", "virtio-net-pci,netdev=n0",
               "-smbios", f"type=1,manufacturer=Amazon EC2,product=m5.large,serial={ec2_uuid},uuid={ec2_uuid}"]
        self.started = time.time()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(
            os.path.join(work, f"{name}-qemu.stderr"), "w"))

    def serial_text(self):
        """The serial console so far, without systemd's colours."""
        try:
            with open(self.serial, errors="replace") as f:
                return ANSI.sub("", f.read())
        except FileNotFoundError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout):
        """Waits for systemd to report drainerd started: with Type=notify
        that is drainerd's READY=1 (the queue was reached)."""
        def check():
            if not self.alive():
                raise Failed(f"{self.name}: QEMU exited with {self.proc.returncode} before drainerd was ready")
            text = self.serial_text()
            if "Failed to start drainerd.service" in text:
                raise Failed(f"{self.name}: systemd reports drainerd failed to start")
            return "Started drainerd.service" in text
        wait_for(f"{self.name}: drainerd READY (serial console: 'Started drainerd.service')", check, timeout, 1)
        return time.time() - self.started

    def ssh(self, command, timeout=60):
        r = subprocess.run(
            ["ssh", "-q", "-i", self.key, "-p", str(self.ssh_port), "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "ConnectTimeout=10", "root@127.0.0.1", command],
            capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise Failed(f"{self.name}: ssh {command!r} exited {r.returncode}: {r.stderr.strip()}")
        return r.stdout

    def drainerd_journal(self):
        """drainerd's journal entries (JSON export: structured fields)."""
        out = self.ssh("journalctl -u drainerd.service -o json --no-pager")
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def powerdown(self):
        """An ACPI power-button press, as EC2 does to stop or terminate."""
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(self.qmp)
        f = s.makefile("rw")
        f.readline()
        for c in ("qmp_capabilities", "system_powerdown"):
            f.write(json.dumps({"execute": c}) + "\n")
            f.flush()
            f.readline()
        s.close()

    def wait_exit(self, timeout):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failed(f"{self.name}: QEMU still running {timeout:.0f} s later") from None
        return time.time()

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def journal_from_disk(self, dest):
        """Reads the guest's persistent journal out of the (stopped) disk
        image with debugfs; returns journalctl's JSON export of it."""
        raw = os.path.join(self.work, f"{self.name}.raw")
        subprocess.run(["qemu-img", "convert", "-O", "raw", self.disk, raw], check=True)
        os.makedirs(dest, exist_ok=True)
        subprocess.run(["debugfs", "-R", f"rdump /var/log/journal {dest}", raw],
                       check=True, capture_output=True)
        os.unlink(raw)
        out = subprocess.run(["journalctl", "-D", os.path.join(dest, "journal"), "-o", "json", "--no-pager"],
                             check=True, capture_output=True, text=True).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def entries(journal, message=None, **fields):
    return [e for e in journal
            if (message is None or e.get("MESSAGE") == message)
            and all(e.get(k) == v for k, v in fields.items())]


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
            finished = {e.get("MESSAGE_ID") for e in entries(vm.drainerd_journal(), "job finished",
                                                               OUTCOME="succeeded")}
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
                                      AttributeNames=["ApproximateReceiveCount"])["Messages"]
            if {m["MessageId"] for m in got} != long_ids:
                raise Failed(f"host received {[m['MessageId'] for m in got]}, expected the long jobs {long_ids}")
            if any(m["Attributes"]["ApproximateReceiveCount"] != "2" for m in got):
                raise Failed("the long jobs' messages were not received by the guest exactly once")
            for m in got:  # leave the queue empty for boot 2
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            journal = vm.drainerd_journal()
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
        total = time.time() - t_all
        log("==> e2e image test passed; stage timings:")
        for name, s in self.timings:
            log(f"    {s:7.1f} s  {name}")
        log(f"    {total:7.1f} s  total")
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
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
