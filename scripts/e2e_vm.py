"""The guest side of the end-to-end image test (scripts/e2e_image.py): the
metadata simulator for one instance, and one boot of the baked image under
QEMU with that simulator behind 169.254.169.254."""
import json
import os
import re
import socket
import subprocess
import time
import uuid
import urllib.request

from common import TARGET, free_port, wait_port

GUEST_HOST = "169.254.0.2"  # the host as the guest sees it (QEMU user networking)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Failed(Exception):
    """A step's check failed; the message says what was expected and seen."""


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
        that is drainerd's READY=1 (the queue was reached). The serial
        console shows "Started drainerd.service" only while systemd still
        prints status there: once the serial getty has taken the console
        (a slow boot under TCG), it does not, so systemd is also asked over
        SSH (ActiveState "active" for a notify unit means READY=1 came)."""
        def check():
            if not self.alive():
                raise Failed(f"{self.name}: QEMU exited with {self.proc.returncode} before drainerd was ready")
            text = self.serial_text()
            if "Failed to start drainerd.service" in text:
                raise Failed(f"{self.name}: systemd reports drainerd failed to start")
            if "Started drainerd.service" in text:
                return True
            if "login:" not in text:
                return False  # SSH is not up before the getty
            try:
                state = self.ssh("systemctl show -p ActiveState --value drainerd.service", timeout=20)
            except (Failed, subprocess.TimeoutExpired):
                return False
            if state.strip() == "failed":
                raise Failed(f"{self.name}: systemd reports drainerd failed to start")
            return state.strip() == "active"
        wait_for(f"{self.name}: drainerd READY (systemd: drainerd.service started)", check, timeout, 1)
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
