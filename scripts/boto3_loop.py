"""A plain boto3 worker loop: the yardstick the drain benchmark's CPU target
was set against ("a plain boto3 loop measures about 1.4 ms above the floor").

`scripts/bench --runner boto3` drains with this instead of drainerd, under
the same measurement. It does what a hand-written worker does and no more:
long-poll for up to CONCURRENCY messages, run /bin/true per message with
the body on stdin (all of a batch at once), delete each success, repeat.
No heartbeats, no backoff, no hand-back on SIGTERM. (Deleting a batch's
successes with one DeleteMessageBatch instead halves its CPU above the
floor here: 0.63 ms rather than 1.61. The target's yardstick, "about 1.4",
is the plain loop's.)

Usage: boto3_loop.py QUEUE_URL ENDPOINT CONCURRENCY
Logs "ready" once its client is built, "job finished" per job, and at
SIGTERM the requests it made in drainerd's log format (sqs_requests=...).
"""
import signal
import subprocess
import sys

import boto3


def main():
    url, endpoint, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    counts = {"ReceiveMessage": 0, "DeleteMessage": 0}

    def stop(_sig, _frame):
        print("sqs_requests=" + " ".join(f"{k}={v}" for k, v in counts.items()), flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    while True:
        counts["ReceiveMessage"] += 1
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(10, concurrency),
                                       WaitTimeSeconds=20).get("Messages", [])
        jobs = [(m, subprocess.Popen(["/bin/true"], stdin=subprocess.PIPE)) for m in messages]
        done = []
        for m, p in jobs:
            p.communicate(m["Body"].encode())
            if p.returncode == 0:
                done.append(m)
        for m in done:
            counts["DeleteMessage"] += 1
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            print(f"job finished message_id={m['MessageId']}", flush=True)


if __name__ == "__main__":
    main()
