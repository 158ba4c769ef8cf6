"""Fleet figures (see scripts/bench-fleet)."""
import os
import re
import signal
import subprocess
import tempfile
import time

from common import ROOT, TARGET, agent_env, client, free_port, queue_toml, start_moto, stop_all, wait_port

SCALE = 30  # 1 s here = 30 s at default timers


def main():
    work = tempfile.mkdtemp(prefix="drainerd-bench-fleet-")
    sim_port, ctl_port = free_port(), free_port()
    moto, endpoint = start_moto()
    procs = [moto]
    try:
        sqs, asg = client("sqs", endpoint), client("autoscaling", endpoint)
        url = sqs.create_queue(QueueName="fleet")["QueueUrl"]
        asg.create_launch_configuration(LaunchConfigurationName="lc", ImageId="ami-12c6146b", InstanceType="t3.micro")
        asg.create_auto_scaling_group(AutoScalingGroupName="g", LaunchConfigurationName="lc", MinSize=1, MaxSize=4,
                                      DesiredCapacity=3, AvailabilityZones=["us-east-1a"])
        me = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["g"])["AutoScalingGroups"][0]["Instances"][0]["InstanceId"]
        procs.append(subprocess.Popen([os.path.join(TARGET, "imds-sim"), "serve", "--listen", f"127.0.0.1:{sim_port}",
                                       "--control", f"127.0.0.1:{ctl_port}", "--instance-id", me, "--launched-ago", "10m"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(ctl_port)
        config = os.path.join(work, "drainerd.toml")
        # Default timers / 30: idle_timeout 10m -> 20s, linger 2m -> 4s, check 30s -> 1s.
        with open(config, "w") as f:
            f.write(queue_toml(url, endpoint) + f"""wait_time = "1s"
[job]
command = ["/bin/sleep", "4"]
[metadata]
endpoint = "http://127.0.0.1:{sim_port}"
[fleet]
endpoint_url = "{endpoint}"
idle_timeout = "20s"
min_lifetime = "10s"
protection_linger = "4s"
check_interval = "1s"
""")
        log_path = os.path.join(work, "drainerd.log")
        env = agent_env()
        agent = subprocess.Popen([os.path.join(TARGET, "drainerd"), "run", "--config", config, "--log-format", "text"],
                                 stdout=open(log_path, "w"), stderr=subprocess.STDOUT, env=env)
        procs.append(agent)
        while "drainerd ready" not in open(log_path).read():
            time.sleep(0.1)
        # One simulated hour: a 4 s job (2 min scaled) every 8 s (busy 2 min, idle 2 min).
        start = time.time()
        while time.time() - start < 3600 / SCALE:
            sqs.send_message(QueueUrl=url, MessageBody="work")
            time.sleep(8)
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=60)
        text = open(log_path).read()
        calls = int(re.search(r"autoscaling_requests=(\d+)", text).group(1))
        protection = text.count("scale-in protection changed")
        left = "left the Auto Scaling group" in text
        print()
        print("fleet logic figures")
        print(f"  Auto Scaling calls per hour, busy/idle every 2 min: {calls}  "
              f"({protection} protection changes; start-up lookup included; target <= 60; left the group: {left})")
        print("  " + subprocess.check_output([os.path.join(ROOT, "target", "release", "examples", "decide_cost")],
                                            text=True).replace("\n", "\n  ").rstrip())
    finally:
        stop_all(procs)


if __name__ == "__main__":
    main()
