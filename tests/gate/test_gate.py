#!/usr/bin/env python3
"""End-to-end tests of the gate through the real `warrant run`: policy first,
a sealed receipt for every outcome, nothing executed when denied or pending,
the chain intact afterwards, and the unprivileged (non-root) path."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from procs import live_processes_with  # noqa: E402

BUILD = os.environ.get("WARRANT_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
WARRANT = os.path.join(BUILD, "clients", "warrant")

POLICY = """\
policy_schema_version: csc.policy.v0.1
name: gate-test
allow_commands: [echo, cat, touch, sh, ls, sleep, "true", "false"]
deny_argv_prefixes:
  - [sh, -c]
allowed_effect_types: [observe, transform_local]
manual_approval_for_classified_effect_types: [mutate_repo]
allowed_risk_classes: [low, medium]
max_timeout_sec: 30
network: deny
allow_secret_refs: false
require_write_paths_empty: false
allowed_cwd_prefixes: [{ws}]
allowed_read_prefixes: [{ws}]
allowed_write_prefixes: [{ws}/out]
"""


def contract(ws, argv, cid="gate-test-contract-1", effect="observe", write=(), risk="low", mode="policy_only"):
    return {
        "version": "csc.v0.1",
        "contract_id": cid,
        "intent": "gate test",
        "actor": {"agent_id": "tester", "session_id": "s-1", "initiating_user": "alice", "delegation_scope": "test"},
        "commands": [{
            "id": "cmd_1", "exec": {"argv": argv}, "cwd": ws, "read_paths": [ws], "write_paths": list(write),
            "network": "deny", "env_allow": [], "secret_refs": [], "timeout_sec": 10,
            "proposed_effect_type": effect,
        }],
        "risk_class": risk,
        "approval_mode": mode,
        "justification": "exercise the gate",
    }


def uid_processes(uid):
    """Processes of uid now; one may exit between listing and stat."""
    n = 0
    for d in os.listdir("/proc"):
        try:
            n += d.isdigit() and os.stat("/proc/" + d).st_uid == uid
        except FileNotFoundError:
            pass
    return n


class GateTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="warrant-gate-")
        os.chmod(self.tmp, 0o755)
        self.ws = os.path.join(self.tmp, "ws")
        os.makedirs(os.path.join(self.ws, "out"))
        os.chmod(self.ws, 0o755)
        os.chmod(os.path.join(self.ws, "out"), 0o777)  # the sandbox runs as an unprivileged user
        with open(os.path.join(self.ws, "note.txt"), "w") as f:
            f.write("the note\n")
        os.chmod(os.path.join(self.ws, "note.txt"), 0o644)
        self.state = os.path.join(self.tmp, "state")
        self.policy = os.path.join(self.tmp, "policy.yaml")
        with open(self.policy, "w") as f:
            f.write(POLICY.format(ws=self.ws))
        os.chmod(self.policy, 0o644)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write_contract(self, c, name="contract.json"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            json.dump(c, f)
        os.chmod(path, 0o644)
        return path

    def run_warrant(self, *args, user=None):
        cmd = [WARRANT, *args]
        if user is not None:
            cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    def run_contract(self, c, *extra, user=None):
        path = self.write_contract(c)
        p = self.run_warrant("run", "--policy", self.policy, "--state-dir", self.state, *extra, path, user=user)
        receipt = json.loads(p.stdout) if p.stdout.strip() else None
        return p, receipt

    def pubkey(self):
        p = self.run_warrant("pubkey", "--state-dir", self.state)
        self.assertEqual(p.returncode, 0, p.stderr)
        path = os.path.join(self.tmp, "server.pub")
        with open(path, "w") as f:
            f.write(p.stdout)
        return path

    def test_allowed_command_runs_and_receipt_verifies(self):
        p, r = self.run_contract(contract(self.ws, ["cat", os.path.join(self.ws, "note.txt")]))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(r["status"], "success")
        self.assertEqual(r["exit_code"], 0)
        self.assertEqual(r["stdout_hash"], "sha256:" + hashlib.sha256(b"the note\n").hexdigest())
        self.assertEqual(r["completed_command_ids"], ["cmd_1"])
        self.assertEqual(r["execution_mode"], "hardened")
        self.assertEqual(r["seq"], 1)
        self.assertEqual(r["prev_receipt_sha256"], "0" * 64)
        path = self.write_contract(r, "receipt.json")
        v = self.run_warrant("verify", "receipt", path, "--pubkey", self.pubkey())
        self.assertEqual(v.returncode, 0, v.stderr)

    def test_glob_read_path_shows_only_its_matches(self):
        # CSC read paths are globs: the sandbox binds the matching entries,
        # not the whole root, and no symlink out of it
        with open(os.path.join(self.ws, "secret.key"), "w") as f:
            f.write("k\n")
        os.chmod(os.path.join(self.ws, "secret.key"), 0o644)
        os.symlink("/etc/hostname", os.path.join(self.ws, "host.txt"))
        c = contract(self.ws, ["cat", os.path.join(self.ws, "note.txt")])
        c["commands"][0]["read_paths"] = [self.ws + "/**/*.txt"]
        p, r = self.run_contract(c)
        self.assertEqual(r["status"], "success", p.stderr + json.dumps(r))
        for hidden in ("secret.key", "host.txt"):
            c = contract(self.ws, ["cat", os.path.join(self.ws, hidden)], cid="gate-test-glob-" + hidden[:6])
            c["commands"][0]["read_paths"] = [self.ws + "/**/*.txt"]
            p, r = self.run_contract(c)
            self.assertEqual(r["status"], "failed", hidden + ": " + json.dumps(r))

    def test_denied_command_never_runs(self):
        marker = os.path.join(self.ws, "out", "marker")
        c = contract(self.ws, ["rm", "-f", marker], effect="transform_local", write=[self.ws + "/out"])
        open(marker, "w").close()
        p, r = self.run_contract(c)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(r["status"], "blocked")
        self.assertIn("COMMAND_NOT_ALLOWED", r["error"])
        self.assertTrue(os.path.exists(marker), "a denied command must not run")
        self.assertNotIn("exit_code", r)

    def test_shell_inline_code_denied(self):
        p, r = self.run_contract(contract(self.ws, ["sh", "-c", "touch " + self.ws + "/out/x"]))
        self.assertEqual(p.returncode, 1)
        self.assertEqual(r["status"], "blocked")
        self.assertFalse(os.path.exists(os.path.join(self.ws, "out", "x")))

    def test_failed_command_is_failed_receipt(self):
        p, r = self.run_contract(contract(self.ws, ["false"]))
        self.assertEqual(p.returncode, 1)
        self.assertEqual(r["status"], "failed")
        self.assertEqual(r["exit_code"], 1)
        self.assertEqual(r["failed_command_id"], "cmd_1")

    def test_write_inside_declared_path_only(self):
        out = os.path.join(self.ws, "out", "made")
        c = contract(self.ws, ["touch", out], effect="transform_local", write=[self.ws + "/out"])
        p, r = self.run_contract(c)
        self.assertEqual(p.returncode, 0, p.stderr + json.dumps(r))
        self.assertTrue(os.path.exists(out))
        self.assertEqual([a["path"] for a in r.get("artifacts", [])], [out])
        # Same command against a path the contract did not declare writable.
        p, r = self.run_contract(contract(self.ws, ["touch", os.path.join(self.ws, "sneaky")]))
        self.assertEqual(r["status"], "failed")
        self.assertFalse(os.path.exists(os.path.join(self.ws, "sneaky")))

    def test_needs_approval_is_blocked_with_request_id(self):
        c = contract(self.ws, ["ls"], mode="human_required")
        p, r = self.run_contract(c)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(r["status"], "blocked")
        self.assertRegex(r["error"], r"apr_[0-9a-f]{32}")
        self.assertEqual(r["decision"], "needs_approval")

    def test_chain_of_mixed_outcomes_verifies(self):
        self.run_contract(contract(self.ws, ["true"]))
        self.run_contract(contract(self.ws, ["curl", "http://example.com"]))
        self.run_contract(contract(self.ws, ["false"]))
        lst = self.run_warrant("receipts", "list", "--state-dir", self.state)
        self.assertEqual(lst.returncode, 0, lst.stderr)
        self.assertEqual(len(lst.stdout.strip().splitlines()), 3)
        v = self.run_warrant("verify", "chain", "--state-dir", self.state, "--pubkey", self.pubkey())
        self.assertEqual(v.returncode, 0, v.stderr)

    def test_bad_inputs_exit_2(self):
        bad = os.path.join(self.tmp, "bad.json")
        with open(bad, "w") as f:
            f.write("{not json")
        p = self.run_warrant("run", "--policy", self.policy, "--state-dir", self.state, bad)
        self.assertEqual(p.returncode, 2)
        self.assertIn("bad.json", p.stderr)
        p = self.run_warrant("run", "--policy", os.path.join(self.tmp, "missing.yaml"), "--state-dir", self.state,
                             self.write_contract(contract(self.ws, ["true"])))
        self.assertEqual(p.returncode, 2)
        self.assertIn("failed to read", p.stderr)
        p = self.run_warrant("run")
        self.assertEqual(p.returncode, 2)

    def test_default_state_dir_from_environment(self):
        c = self.write_contract(contract(self.ws, ["true"]))
        base = {k: v for k, v in os.environ.items() if k not in ("WARRANT_STATE_DIR", "XDG_STATE_HOME", "HOME")}

        def run(**env):
            return subprocess.run([WARRANT, "run", "--policy", self.policy, c], capture_output=True, text=True,
                                  timeout=60, env=dict(base, **env))
        # HOME only: created owner-only with its parents, shared with receipts list
        home = os.path.join(self.tmp, "home")
        p = run(HOME=home)
        self.assertEqual(p.returncode, 0, p.stderr)
        state = os.path.join(home, ".local", "state", "warrant")
        self.assertEqual(os.stat(state).st_mode & 0o777, 0o700)
        self.assertEqual(os.stat(os.path.dirname(state)).st_mode & 0o777, 0o700)
        lst = subprocess.run([WARRANT, "receipts", "list"], capture_output=True, text=True, env=dict(base, HOME=home))
        self.assertEqual(len(lst.stdout.splitlines()), 1, lst.stderr)
        # a relative XDG_STATE_HOME is ignored, not resolved against the cwd
        p = run(HOME=home, XDG_STATE_HOME="relative/dir")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertFalse(os.path.exists("relative"))
        # nothing to go by: a clear error, nothing created
        p = run()
        self.assertEqual(p.returncode, 2)
        self.assertIn("no state dir", p.stderr)
        # absurdly long: refused with a message, not truncated
        p = run(WARRANT_STATE_DIR=self.tmp + "/" + "x" * 5000)
        self.assertEqual(p.returncode, 2)
        self.assertIn("longer than", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1)

    def broad_policy(self):
        """A policy that lets contracts read everything under the temp dir,
        which also holds the state dir."""
        with open(self.policy, "w") as f:
            f.write(POLICY.format(ws=self.ws).replace("allowed_read_prefixes: [%s]" % self.ws,
                                                    "allowed_read_prefixes: [%s]" % self.tmp))
        os.chmod(self.policy, 0o644)

    def test_state_dir_never_exposed(self):
        # Even when the policy allows it, no contract reads the signing key.
        self.broad_policy()
        self.run_contract(contract(self.ws, ["true"]))  # creates the state dir and key
        key = os.path.join(self.state, "receipt-signing.key")
        self.assertTrue(os.path.exists(key))
        for declared in (self.tmp, self.tmp + "/**", self.state):
            c = contract(self.ws, ["cat", key])
            c["commands"][0]["read_paths"] = [declared]
            p, r = self.run_contract(c)
            self.assertEqual(p.returncode, 1, declared)
            self.assertEqual(r["status"], "blocked", declared)
            self.assertIn("would expose", r["error"])
            self.assertNotIn("stdout_bytes", r)

    def test_symlink_into_state_dir_refused(self):
        self.broad_policy()
        self.run_contract(contract(self.ws, ["true"]))
        link = os.path.join(self.tmp, "innocent")
        os.symlink(self.state, link)
        c = contract(self.ws, ["cat", os.path.join(link, "receipt-signing.key")])
        c["commands"][0]["read_paths"] = [link]
        p, r = self.run_contract(c)
        self.assertEqual(r["status"], "blocked")
        self.assertIn("would expose", r["error"])

    @unittest.skipUnless(os.geteuid() == 0, "needs root to switch to an unprivileged user")
    def test_unprivileged_server_key_not_readable(self):
        # Run as the key's owner: only the gate stands between the key and the agent.
        self.broad_policy()
        os.makedirs(self.state, mode=0o700)
        os.chown(self.state, 65534, 65534)
        key = os.path.join(self.state, "receipt-signing.key")
        self.run_contract(contract(self.ws, ["true"]), user=65534)
        c = contract(self.ws, ["cat", key])
        c["commands"][0]["read_paths"] = [self.tmp]
        p, r = self.run_contract(c, user=65534)
        self.assertEqual(r["status"], "blocked")
        self.assertNotIn("PRIVATE KEY", p.stdout + p.stderr)

    def test_killing_warrant_kills_the_sandbox(self):
        # A SIGKILLed runner must not leave its command running unsupervised.
        marker = "29.%06d" % (os.getpid() % 1000000)  # a unique sleep argument to find it by
        path = self.write_contract(contract(self.ws, ["sleep", marker]))
        p = subprocess.Popen([WARRANT, "run", "--policy", self.policy, "--state-dir", self.state, path],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def live_sleeps():
            return live_processes_with(marker.encode())

        deadline = time.time() + 10
        while not live_sleeps() and time.time() < deadline:
            time.sleep(0.05)
        self.assertTrue(live_sleeps(), "the command never started")
        p.kill()
        p.wait()
        deadline = time.time() + 5
        while live_sleeps() and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(live_sleeps(), [], "the sandboxed command outlived warrant")

    @unittest.skipUnless(os.geteuid() == 0, "needs root to switch to an unprivileged user")
    def test_busy_user_can_still_run(self):
        # RLIMIT_NPROC counts all of a uid's processes: a user already running
        # more than max_processes (128 by default) must still be able to run.
        os.makedirs(self.state, mode=0o700)
        os.chown(self.state, 65534, 65534)
        busy = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                                 "sh", "-c", "for i in $(seq 150); do sleep 30 & done; wait"],
                                start_new_session=True)
        try:
            deadline = time.time() + 10
            while uid_processes(65534) < 150 and time.time() < deadline:
                time.sleep(0.05)
            p, r = self.run_contract(contract(self.ws, ["cat", os.path.join(self.ws, "note.txt")]), user=65534)
            self.assertEqual(r["status"], "success", r.get("error"))
        finally:
            os.killpg(busy.pid, signal.SIGKILL)  # only our own sleeps: other tests run as 65534 too
            busy.wait()

    @unittest.skipUnless(os.geteuid() == 0, "needs root to switch to an unprivileged user")
    def test_runs_as_unprivileged_user(self):
        # Most people run warrant as themselves: no root, no setuid helper.
        os.makedirs(self.state, mode=0o700)
        os.chown(self.state, 65534, 65534)
        p, r = self.run_contract(contract(self.ws, ["cat", os.path.join(self.ws, "note.txt")]), user=65534)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(r["status"], "success")
        self.assertEqual(r["stdout_hash"], "sha256:" + hashlib.sha256(b"the note\n").hexdigest())

    def test_isolation_recorded_and_min_strength_blocks(self):
        # The receipt says what isolated the run; a policy asking for more
        # than this host gives is blocked before anything runs.
        p, r = self.run_contract(contract(self.ws, ["true"]))
        self.assertEqual(r["status"], "success", p.stderr)
        iso = r["isolation"]
        self.assertIn(iso["cgroup"], ("v1", "v2", "none"))
        self.assertTrue(0 < iso["score"] <= 100)
        self.assertIn("sandbox: cgroup " + iso["cgroup"], p.stderr)  # said once at start
        path = self.write_contract(r, "receipt.json")
        self.assertEqual(self.run_warrant("verify", "receipt", path, "--pubkey", self.pubkey()).returncode, 0)
        with open(self.policy, "a") as f:
            f.write("sandbox:\n  min_strength: %d\n" % (iso["score"] + 1))
        marker = os.path.join(self.ws, "out", "ran")
        p, r = self.run_contract(contract(self.ws, ["touch", marker], write=[os.path.join(self.ws, "out")]))
        self.assertEqual(p.returncode, 1)
        self.assertEqual(r["status"], "blocked")
        self.assertIn("below the policy's min_strength", r["error"])
        self.assertFalse(os.path.exists(marker))

    def run_on_terminal(self, c, *extra):
        # warrant run with stderr on a terminal (it echoes output only there)
        import pty
        master, slave = pty.openpty()
        path = self.write_contract(c)
        p = subprocess.Popen([WARRANT, "run", "--policy", self.policy, "--state-dir", self.state, *extra, path],
                             stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        shown = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        p.wait(timeout=60)
        os.close(master)
        return shown

    def test_terminal_injection_escaped(self):
        # OSC 52 (clipboard write), a title change, a cursor erase and a bidi
        # override in the command's output never reach the operator's
        # terminal as such, unless --raw.
        evil = os.path.join(self.ws, "evil.txt")
        with open(evil, "wb") as f:
            f.write(b"ok \x1b]52;c;cm0gLXJmIH4=\x07 \x1b]0;pwned\x07 \x1b[2K \xe2\x80\xae gnp.exe \xc2\x9b\n")
        os.chmod(evil, 0o644)
        shown = self.run_on_terminal(contract(self.ws, ["cat", evil]))
        self.assertIn(b"ok ", shown)
        for raw in (b"\x1b", b"\x07", b"\xe2\x80\xae", b"\xc2\x9b"):
            self.assertNotIn(raw, shown)
        self.assertIn(b"\\u001b]52;c;cm0gLXJmIH4=\\u0007", shown)
        self.assertIn(b"\\u202e", shown)
        self.assertIn(b"\x1b]52;", self.run_on_terminal(contract(self.ws, ["cat", evil]), "--raw"))

    def test_interrupt_seals_a_cancelled_receipt(self):
        # Ctrl-C / SIGTERM cancel the run: the command dies, a receipt is
        # sealed (failed, "cancelled") and the chain still verifies.
        for sig in (signal.SIGINT, signal.SIGTERM):
            marker = "28.%06d" % ((os.getpid() + sig) % 1000000)
            path = self.write_contract(contract(self.ws, ["sleep", marker]))
            p = subprocess.Popen([WARRANT, "run", "--policy", self.policy, "--state-dir", self.state, path],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            deadline = time.time() + 10
            while not live_processes_with(marker.encode()) and time.time() < deadline:
                time.sleep(0.05)
            self.assertTrue(live_processes_with(marker.encode()), "the command never started")
            p.send_signal(sig)
            out, err = p.communicate(timeout=20)
            self.assertEqual(p.returncode, 1, err)
            r = json.loads(out)
            self.assertEqual(r["status"], "failed")
            self.assertEqual(r["error"], "cancelled")
            self.assertEqual(live_processes_with(marker.encode()), [])
        v = self.run_warrant("verify", "chain", "--state-dir", self.state, "--pubkey", self.pubkey())
        self.assertEqual(v.returncode, 0, v.stderr)

    def test_crashed_run_sealed_interrupted_at_next_start(self):
        # A warrant killed mid-run (no chance to seal) leaves its execution
        # "running"; the next start seals it failed, "interrupted" — but
        # never a run that another live warrant is still executing.
        markers = ["27.%06d" % ((os.getpid() + k) % 1000000) for k in (1, 2)]
        procs = []
        for i, marker in enumerate(markers):
            path = self.write_contract(contract(self.ws, ["sleep", marker]), "c%d.json" % i)
            procs.append(subprocess.Popen([WARRANT, "run", "--policy", self.policy, "--state-dir", self.state, path],
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
            deadline = time.time() + 10
            while not live_processes_with(marker.encode()) and time.time() < deadline:
                time.sleep(0.05)
        procs[0].kill()  # the crash
        procs[0].wait()
        p, r = self.run_contract(contract(self.ws, ["true"]))
        self.assertEqual(r["status"], "success", p.stderr)
        self.assertIn("sealed 1 interrupted run as failed", p.stderr)
        listed = self.run_warrant("receipts", "list", "--state-dir", self.state).stdout
        self.assertEqual(listed.count("failed"), 1, listed)
        procs[1].send_signal(signal.SIGTERM)  # the live one seals its own receipt
        out, _ = procs[1].communicate(timeout=20)
        self.assertEqual(json.loads(out)["error"], "cancelled")
        listed = self.run_warrant("receipts", "list", "--state-dir", self.state).stdout
        self.assertEqual(len(listed.strip().splitlines()), 3, listed)
        v = self.run_warrant("verify", "chain", "--state-dir", self.state, "--pubkey", self.pubkey())
        self.assertEqual(v.returncode, 0, v.stderr)
        exported = os.path.join(self.tmp, "exported")
        self.run_warrant("receipts", "export", "--state-dir", self.state, "--dir", exported)
        errors = []
        for f in sorted(os.listdir(exported)):
            if f.endswith(".json"):  # the log's checkpoint lies beside the receipts
                with open(os.path.join(exported, f)) as fp:
                    errors.append(json.load(fp).get("error", ""))
        self.assertTrue(any(e.startswith("interrupted") for e in errors), errors)


if __name__ == "__main__":
    unittest.main(verbosity=2)
