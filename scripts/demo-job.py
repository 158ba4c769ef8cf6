#!/usr/bin/env python3
"""A demo job: counts the primes below the number in the message body.

drainerd runs it once per message: the body arrives on stdin, the message id
in DRAINERD_MESSAGE_ID. Exit 0 deletes the message; anything else hands it
back with backoff (a body that is not a number fails every time and ends in
the dead-letter queue).
"""
import json
import os
import sys

import signal
import time

body = sys.stdin.read()
try:
    job = json.loads(body)
    n = int(job["below"])
except (ValueError, KeyError, TypeError) as e:
    print(f"cannot read {body!r}: {e}", file=sys.stderr)
    sys.exit(2)

# A slow job (it sleeps first) shows what happens on an interruption:
# drainerd sends SIGTERM, then hands the message back for another instance.
def stopped(signum, frame):
    print(f"got SIGTERM while working on primes below {n}; exiting, drainerd hands the message back")
    sys.exit(143)

signal.signal(signal.SIGTERM, stopped)
time.sleep(float(job.get("sleep", 0)))

sieve = bytearray([1]) * max(n, 2)
sieve[0:2] = b"\x00\x00"
for i in range(2, int(n ** 0.5) + 1):
    if sieve[i]:
        sieve[i * i :: i] = bytearray(len(range(i * i, n, i)))
print(f"primes below {n}: {sum(sieve[:n])} (attempt {os.environ['DRAINERD_RECEIVE_COUNT']})")
