"""warrantd's warm launchers (docs/sandbox.md): the pool is there and full,
a run takes one and it is replaced, the receipt says which limits were in
force, and neither a clean exit nor a SIGKILL of the server leaves a
launcher behind; the cgroups a killed server left go at the next start."""
import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
import mcpraw  # noqa: E402
from mcpraw import INIT, INITIALIZED  # noqa: E402

LAUNCHER = "warrant-launch"


def launchers_of(ppid):
    """pids of the live warrant-launch processes whose parent is ppid."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if comm == LAUNCHER and int(fields[1]) == ppid and fields[0] != "Z":
            found.append(int(d))
    return sorted(found)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def freezer_warrant_dir():
    """Where run cgroups go (the freezer hierarchy lists every run), or None."""
    if os.geteuid() != 0:
        return None
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if "freezer" in ctrls.split(","):
                d = "/sys/fs/cgroup/freezer" + (path if path != "/" else "") + "/warrant"
                return d if os.access(os.path.dirname(d), os.W_OK) else None
    return None


def run_cgroups_of(pid):
    d = freezer_warrant_dir()
    if not d or not os.path.isdir(d):
        return []
    return [n for n in os.listdir(d) if n.startswith("run-%d-" % pid)]


def wait_for(pred, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    return pred()


class Launchers(unittest.TestCase):
    def setUp(self):
        self.fx = mcpraw.Fixture()

    def tearDown(self):
        self.fx.cleanup()

    def start(self, *extra):
        c = mcpraw.Stdio(self.fx, *extra)
        c.send(INIT)
        c.recv()
        c.send(INITIALIZED)
        return c

    def run_true(self, c, rid):
        c.send({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                "params": {"name": "run", "arguments": {"contract": mcpraw.contract(self.fx.ws, ["/bin/true"])}}})
        msg = c.recv(30)
        receipt = msg["result"]["structuredContent"]["receipt"]
        self.assertEqual(receipt["status"], "success", json.dumps(msg)[:800])
        return receipt

    def test_pool_replaced_and_limits_recorded(self):
        c = self.start("--launchers", "3")
        pid = c.p.pid
        first = wait_for(lambda: len(launchers_of(pid)) == 3 and launchers_of(pid))
        self.assertEqual(len(first), 3, first)
        receipt = self.run_true(c, 1)
        # the run took one; a new one took its place, none is reused
        now = wait_for(lambda: len(launchers_of(pid)) == 3 and set(launchers_of(pid)) != set(first)
                       and launchers_of(pid))
        self.assertEqual(len(now), 3)
        self.assertEqual(len(set(now) & set(first)), 2)
        iso = receipt["isolation"]
        if freezer_warrant_dir():  # the limits the run's plan set, written into the launcher's cgroups
            self.assertEqual(iso["cgroup"], "v1")
            self.assertGreater(iso["limits"]["memory_bytes"], 0)
            self.assertGreater(iso["limits"]["pids_max"], 0)
        c.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "describe_policy",
                                                                            "arguments": {}}})
        self.assertIn("cgroup", json.dumps(c.recv(10)["result"]))
        self.assertEqual(c.close(), 0)
        self.assertFalse([p for p in now if alive(p)])
        self.assertEqual(run_cgroups_of(pid), [])

    def test_none(self):
        c = self.start("--launchers", "0")
        self.run_true(c, 1)
        time.sleep(0.2)
        self.assertEqual(launchers_of(c.p.pid), [])
        self.assertEqual(c.close(), 0)

    def kill_server(self):
        """A server with its pool of 2, SIGKILLed: its pid and the run
        cgroups it had."""
        c = self.start()
        pid = c.p.pid
        pool = wait_for(lambda: len(launchers_of(pid)) == 2 and launchers_of(pid))
        self.assertEqual(len(pool), 2)
        left = run_cgroups_of(pid)
        os.kill(pid, signal.SIGKILL)
        c.p.wait(10)
        # the parent-death signal: no launcher outlives the server
        self.assertTrue(wait_for(lambda: not [p for p in pool if alive(p)]), pool)
        for f in (c.p.stdin, c.p.stdout, c.p.stderr):
            f.close()
        return pid, left

    def test_server_killed(self):
        self.kill_server()

    def test_killed_servers_cgroups_removed(self):
        if not freezer_warrant_dir():
            self.skipTest("run cgroups are listed here only in a writable cgroup v1 freezer hierarchy (root)")
        pid, left = self.kill_server()
        self.assertEqual(len(left), 2)
        # the next start kills and removes what the dead server left
        c2 = self.start("--launchers", "0")
        self.assertEqual(run_cgroups_of(pid), [])
        self.assertEqual(c2.close(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
