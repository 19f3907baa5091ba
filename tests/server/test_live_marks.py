"""What warrantd keeps across runs, off their path: a run's live mark
(STATE_DIR/running/ID, flocked until its receipt is sealed) made ahead —
the marks waiting for a run are locked, a run in flight is never sealed
"interrupted" by another warrant starting on the same state dir, a
SIGKILLed server's run is, a clean exit leaves no mark behind — and the run
threads, of which a burst of runs leaves at most RUN_THREADS_IDLE_MAX idle."""
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mcpraw  # noqa: E402
from mcpraw import INIT, INITIALIZED  # noqa: E402
from procs import live_processes_with  # noqa: E402

WARRANT = os.path.join(mcpraw.BUILD, "clients", "warrant")
MARKS_AHEAD = 4  # WR_GATE_MARKS_AHEAD
IDLE_RUN_THREADS = 4  # RUN_THREADS_IDLE_MAX
BURST = 16


def locked(path):
    """Whether another open file description holds an flock on path."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False  # a released mark, removed meanwhile
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


class LiveMarks(unittest.TestCase):
    def setUp(self):
        self.fx = mcpraw.Fixture()
        self.running = os.path.join(self.fx.state, "running")
        self.contract = os.path.join(self.fx.tmp, "true.json")
        with open(self.contract, "w") as f:
            json.dump(mcpraw.contract(self.fx.ws, ["true"]), f)

    def tearDown(self):
        self.fx.cleanup()

    def start(self):
        c = mcpraw.Stdio(self.fx)
        c.send(INIT)
        c.recv()
        c.send(INITIALIZED)
        return c

    def call_run(self, c, rid, argv):
        c.send({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                "params": {"name": "run", "arguments": {"contract": mcpraw.contract(self.fx.ws, argv)}}})

    def cli_run(self):
        """`warrant run` of /bin/true on the server's state dir: its start seals abandoned runs."""
        p = subprocess.run([WARRANT, "run", "--quiet", "--policy", self.fx.policy, "--state-dir", self.fx.state,
                            self.contract], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stderr

    def waiting_marks(self):
        return [m for m in os.listdir(self.running) if locked(os.path.join(self.running, m))]

    def receipts(self):
        out = subprocess.run([WARRANT, "receipts", "list", "--state-dir", self.fx.state], capture_output=True,
                             text=True, timeout=30).stdout
        return out.strip().splitlines()

    def test_marks_made_ahead_are_locked_and_taken(self):
        c = self.start()
        for rid in range(1, 4):
            self.call_run(c, rid, ["true"])
            receipt = c.recv(30)["result"]["structuredContent"]["receipt"]
            self.assertEqual(receipt["status"], "success")
        # made after the answer, while the client reads it; unlocked files are
        # released marks, removed by the next one
        deadline = time.monotonic() + 10
        while not self.waiting_marks() and time.monotonic() < deadline:
            time.sleep(0.02)
        marks = self.waiting_marks()
        self.assertTrue(1 <= len(marks) <= MARKS_AHEAD, marks)
        # a mark made ahead is the next run's: its execution id
        self.call_run(c, 4, ["true"])
        receipt = c.recv(30)["result"]["structuredContent"]["receipt"]
        self.assertIn(receipt["execution_id"], marks)
        # released before the answer (its file goes with the next mark)
        used = os.path.join(self.running, receipt["execution_id"])
        self.assertFalse(os.path.exists(used) and locked(used))
        deadline = time.monotonic() + 10
        while os.path.exists(used) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertFalse(os.path.exists(used))
        self.assertEqual(c.close(), 0)
        self.assertEqual(os.listdir(self.running), [])

    def test_live_run_kept_crashed_run_sealed(self):
        c = self.start()
        self.call_run(c, 1, ["true"])
        c.recv(30)
        marker = "31.%06d" % (os.getpid() % 1000000)
        self.call_run(c, 2, ["sleep", marker])
        deadline = time.monotonic() + 20
        while not live_processes_with(marker.encode()) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(live_processes_with(marker.encode()), "the command never started")
        # another warrant starting now finds the server's run live
        self.assertNotIn("interrupted", self.cli_run())
        self.assertFalse([r for r in self.receipts() if "failed" in r])
        os.kill(c.p.pid, signal.SIGKILL)  # the crash
        c.p.wait(10)
        for f in (c.p.stdin, c.p.stdout, c.p.stderr):
            f.close()
        self.assertIn("sealed 1 interrupted run as failed", self.cli_run())
        self.assertEqual(len([r for r in self.receipts() if "failed" in r]), 1)

    def test_burst_leaves_few_idle_threads(self):
        c = mcpraw.Stdio(self.fx, "--max-runs", str(2 * BURST), "--max-runs-per-client", str(BURST))
        c.send(INIT)
        c.recv()
        c.send(INITIALIZED)
        self.call_run(c, 1, ["true"])
        c.recv(30)
        before = len(os.listdir("/proc/%d/task" % c.p.pid))  # one run thread, idle
        for rid in range(2, 2 + BURST):
            self.call_run(c, rid, ["sleep", "0.3"])
        done = 0
        while done < BURST:
            msg = c.recv(60)
            if "id" in msg:
                self.assertEqual(msg["result"]["structuredContent"]["receipt"]["status"], "success")
                done += 1
        deadline = time.monotonic() + 10
        while len(os.listdir("/proc/%d/task" % c.p.pid)) > before - 1 + IDLE_RUN_THREADS and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertLessEqual(len(os.listdir("/proc/%d/task" % c.p.pid)), before - 1 + IDLE_RUN_THREADS)
        self.assertEqual(c.close(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
