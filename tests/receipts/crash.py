#!/usr/bin/env python3
"""Crash safety of the store and the receipt chain (issue 4, item 6).

50 sequential `warrant run`s of /bin/true against one state dir; most are
SIGKILLed at a random moment of their life (>= 20 kills must land while the
process is still running). Afterwards:
- wr_store_integrity_check (PRAGMA integrity_check) says "ok",
- `warrant verify chain --state-dir` passes,
- every receipt printed before a kill (or by a run that finished) is in the
  store, byte for byte in canonical form, and verifies on its own.
A receipt is printed only after it is durable, so none may be missing.

usage: crash.py RECEIPT_DRIVER WARRANT_CLI  (as root: `warrant run` needs it
for the sandbox's unprivileged user). WARRANT_CRASH_SEED fixes the schedule.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from truerun import write_truerun  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from procs import live_processes_with  # noqa: E402

DRIVER, WARRANT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
RUNS, MIN_KILLS = 50, 20

if os.geteuid() != 0:
    print("skip: warrant run needs root here")
    sys.exit(77)

seed = int(os.environ.get("WARRANT_CRASH_SEED", random.randrange(1 << 30)))
rng = random.Random(seed)
print("seed %d (set WARRANT_CRASH_SEED to replay)" % seed)


def fail(msg):
    print("FAIL (seed %d): %s" % (seed, msg), file=sys.stderr)
    sys.exit(1)


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


tmp = tempfile.mkdtemp(prefix="wr-crash-")
try:
    os.chmod(tmp, 0o755)
    state = os.path.join(tmp, "state")
    cmd = [WARRANT, "run", *write_truerun(tmp, "crash-test")]

    def start(stderr=subprocess.DEVNULL):
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr)

    # How long one run lives (the shortest of a few uninterrupted runs; the
    # first also creates the key and the database), so that kills land
    # anywhere in a lifetime.
    printed, lives = [], []
    for _ in range(3):
        t0 = time.monotonic()
        p = start(subprocess.PIPE)
        out, err = p.communicate(timeout=60)
        lives.append(time.monotonic() - t0)
        if p.returncode != 0:
            fail("an uninterrupted warrant run failed (exit %d): %s %s" % (p.returncode, out[-300:], err[-300:]))
        printed.append(out)
    life = min(lives)

    kills = 0
    for i in range(RUNS):
        p = start()
        # 4 out of 5 runs are killed, at a uniformly random moment of a typical lifetime.
        if i % 5:
            time.sleep(rng.uniform(0, life))
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                kills += 1
        out, _ = p.communicate(timeout=60)
        printed.append(out)
    if kills < MIN_KILLS:
        fail("only %d of the runs were killed while alive (want >= %d)" % (kills, MIN_KILLS))

    # A killed runner takes its command with it. (bwrap's own pid 1 can
    # outlive a kill that lands inside bwrap's start-up, before bwrap arms its
    # parent-death signal (seen idle, its command gone). It is removed
    # below so it does not accumulate.)
    def survivors():
        return live_processes_with(tmp.encode(), include_bwrap=False)
    deadline = time.time() + 5
    while survivors() and time.time() < deadline:
        time.sleep(0.05)
    if survivors():
        fail("%d sandboxed command processes outlived their killed runner" % len(survivors()))
    for pid in live_processes_with(tmp.encode()):
        try:
            os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass

    r = subprocess.run([DRIVER, "integrity", state], capture_output=True, text=True)
    if r.returncode != 0 or r.stdout.strip() != "ok":
        fail("integrity check: %s %s" % (r.stdout, r.stderr))
    pub = os.path.join(tmp, "server.pub")
    with open(pub, "w") as f:
        f.write(subprocess.run([WARRANT, "pubkey", "--state-dir", state], capture_output=True, text=True,
                               check=True).stdout)
    r = subprocess.run([WARRANT, "verify", "chain", "--state-dir", state, "--pubkey", pub], capture_output=True,
                       text=True)
    if r.returncode != 0:
        fail("verify chain: " + r.stderr)
    total = json.loads(r.stdout)["receipts"]

    exported = os.path.join(tmp, "exported")
    subprocess.run([WARRANT, "receipts", "export", "--state-dir", state, "--dir", exported], check=True,
                   capture_output=True)
    seen = 0
    for out in printed:
        text = out.decode(errors="replace").strip()
        if not text:
            continue
        try:
            receipt = json.loads(text)
        except ValueError:
            continue  # killed mid-print: never acknowledged as a whole
        seen += 1
        path = os.path.join(exported, "%06d.json" % receipt["seq"])
        if not os.path.exists(path) or open(path, "rb").read() != canonical(receipt):
            fail("printed receipt seq %d is not in the store as printed" % receipt["seq"])
        r = subprocess.run([WARRANT, "verify", "receipt", path, "--pubkey", pub], capture_output=True, text=True)
        if r.returncode != 0:
            fail("printed receipt seq %d does not verify: %s" % (receipt["seq"], r.stderr))
    print("ok - %d runs, %d killed while running, %d receipts in an intact chain, all %d printed ones present "
          "and valid; integrity_check ok" % (RUNS + len(lives), kills, total, seen))
finally:
    shutil.rmtree(tmp, ignore_errors=True)
