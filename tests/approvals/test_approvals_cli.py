#!/usr/bin/env python3
"""`warrant approvals list|show|approve|deny|revoke` as an approver uses it:
real state dirs, real keys (PKCS#8 PEM written by `cryptography`, and raw
base64), exit codes 0/1/2 and the messages a human reads. Artifacts printed
by `approve` are verified here independently (canonical JSON + Ed25519), so
the CLI's signatures interoperate with any CSC verifier.

usage: test_approvals_cli.py WARRANT_BIN MKREQUEST_BIN"""
import base64
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from datetime import datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

WARRANT, MKREQUEST = sys.argv[1], sys.argv[2]


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def contract(cid, mode="human_required", user="fabio", intent="inspect the repository", why="tests"):
    return {
        "version": "csc.v0.1", "contract_id": cid, "intent": intent,
        "actor": {"agent_id": "agent-1", "session_id": "s-1", "initiating_user": user, "delegation_scope": "repo"},
        "commands": [{"id": "cmd_1", "exec": {"argv": ["git", "status", "--short"]}, "cwd": "/workspace//repo/.",
                      "read_paths": ["/workspace/**"], "write_paths": [], "network": "deny", "env_allow": [],
                      "secret_refs": [], "timeout_sec": 10, "proposed_effect_type": "observe"}],
        "risk_class": "medium", "approval_mode": mode, "justification": why,
    }


class World:
    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="wr-apv-cli-")
        self.dir = self.tmp.name
        self.state = os.path.join(self.dir, "state")
        self.keys = {}
        for name in ("alice", "bob", "carol", "mallory"):
            sk = Ed25519PrivateKey.generate()
            self.keys[name] = sk
            path = os.path.join(self.dir, name + ".key")
            if name == "bob":  # raw base64 seed: accepted on input too
                raw = sk.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                       serialization.NoEncryption())
                data = base64.b64encode(raw) + b"\n"
            else:
                data = sk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, data)
            os.close(fd)

        def approver(name, risks):
            pem = self.pub_pem(name).strip().replace("\n", "\n      ")
            return (f"  - identity: {name}@example.com\n    public_key: |\n      {pem}\n"
                    f"    may_approve: {{risk_classes: [{risks}], effect_types: [observe]}}\n")
        # a real workspace for `warrant run`; the sandbox runs as an
        # unprivileged user, so it must be world-readable
        os.chmod(self.dir, 0o755)
        self.ws = os.path.join(self.dir, "ws")
        os.mkdir(self.ws, 0o755)
        self.note = os.path.join(self.ws, "note.txt")
        with open(self.note, "w") as f:
            f.write("approved content\n")
        os.chmod(self.note, 0o644)
        self.policy = os.path.join(self.dir, "policy.yaml")
        with open(self.policy, "w") as f:
            f.write("policy_schema_version: csc.policy.v0.1\nname: approvals-cli\nallow_commands: [git, cat]\n"
                    "allowed_effect_types: [observe]\nallowed_risk_classes: [low, medium]\nmax_timeout_sec: 60\n"
                    f"network: deny\nallow_secret_refs: false\nallowed_cwd_prefixes: [/workspace, {self.ws}]\n"
                    f"allowed_read_prefixes: [/workspace, {self.ws}]\napprovers:\n" + approver("alice", "low, medium") +
                    approver("bob", "low, medium") + approver("carol", "low") +
                    "approval:\n  max_lifetime_sec: 7200\n  allow_time_window: false\n")
        os.chmod(self.policy, 0o644)

    def pub_pem(self, name):
        return self.keys[name].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def key(self, name):
        return os.path.join(self.dir, name + ".key")

    def request(self, doc):
        path = os.path.join(self.dir, doc["contract_id"] + ".json")
        with open(path, "w") as f:
            json.dump(doc, f)
        r = subprocess.run([MKREQUEST, self.state, self.policy, path], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        rid, sha = r.stdout.split()
        return rid, sha

    def warrant(self, *args, state=True):
        argv = [WARRANT, "approvals", *args] + (["--state-dir", self.state] if state else [])
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)


class ApprovalsCli(unittest.TestCase):
    def setUp(self):
        self.w = World()
        self.addCleanup(self.w.tmp.cleanup)

    def ok(self, *args):
        r = self.w.warrant(*args)
        self.assertEqual(r.returncode, 0, f"{args}: {r.stderr}")
        return r

    def fails(self, code, want, *args):
        r = self.w.warrant(*args)
        self.assertEqual(r.returncode, code, f"{args}: stdout {r.stdout!r} stderr {r.stderr!r}")
        self.assertIn(want, r.stderr)
        self.assertEqual(r.stdout, "")
        return r

    def listed(self, *extra):
        return {r["request_id"]: r for r in json.loads(self.ok("list", "--json", *extra).stdout)}

    def verify_artifact(self, art, signer):
        sig = art["signature"]
        self.assertEqual(sig["algorithm"], "ed25519")
        unsigned = json.loads(json.dumps(art))
        del unsigned["signature"]["signature"]
        pub = self.w.keys[signer].public_key()
        pub.verify(base64.b64decode(sig["signature"]), canonical(unsigned))  # raises if it does not hold
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.assertEqual(base64.b64decode(sig["public_key"]), raw)
        self.assertEqual(sig["key_id"], hashlib.sha256(raw).hexdigest()[:16])

    def test_list_show_approve(self):
        rid, sha = self.w.request(contract("contract-list"))
        text = self.ok("list").stdout
        self.assertIn(rid, text)
        self.assertIn("pending", text)
        self.assertIn("0/1 approvals", text)
        self.assertIn("git status --short", text)
        self.assertIn("cwd /workspace/repo", text)  # normalised, as the sandbox will see it
        self.assertIn("network deny", text)
        self.assertIn("risk medium", text)
        self.assertIn("agent agent-1", text)
        item = self.listed()[rid]
        self.assertEqual(item["contract_sha256"], sha)
        self.assertEqual(item["status"], "pending")
        self.assertEqual(item["agent_id"], "agent-1")
        self.assertEqual(item["intent"], "inspect the repository")
        self.assertEqual(item["commands"][0]["argv"], ["git", "status", "--short"])
        self.assertEqual(item["commands"][0]["read_paths"], ["/workspace/**"])
        self.assertEqual(item["required_approvals"], 1)

        shown = self.ok("show", rid).stdout
        self.assertIn("WARNING", shown)
        self.assertIn("untrusted", shown)
        self.assertIn('"justification": "tests"', shown)
        self.assertIn(sha, shown)
        full = json.loads(self.ok("show", rid, "--json").stdout)
        self.assertEqual(full["contract"]["contract_id"], "contract-list")
        self.assertEqual(full["decision"]["decision"], "needs_approval")

        r = self.ok("approve", rid, "--key", self.w.key("alice"), "--reason", "ok by me", "--policy", self.w.policy)
        art = json.loads(r.stdout)
        self.verify_artifact(art, "alice")
        self.assertEqual(art["approval_version"], "csc.approval.v0.1")
        self.assertEqual(art["contract_sha256"], sha)
        self.assertEqual(art["approver"], {"identity": "alice@example.com", "method": "cli"})
        self.assertEqual(art["scope"], "single_execution")
        self.assertEqual(art["reason"], "ok by me")
        span = (datetime.fromisoformat(art["expires_at"].replace("Z", "+00:00")) -
                datetime.fromisoformat(art["approved_at"].replace("Z", "+00:00"))).total_seconds()
        self.assertEqual(span, 3600)
        self.assertIn("1 of 1 approvals", r.stderr)
        path = os.path.join(self.w.dir, "artifact.json")
        with open(path, "w") as f:
            f.write(r.stdout)
        v = subprocess.run([WARRANT, "validate", "approval", path], capture_output=True, text=True)
        self.assertEqual(v.returncode, 0, v.stderr)
        # approved: no longer waiting for a human, still visible with --all
        self.assertNotIn(rid, self.listed())
        self.assertEqual(self.listed("--all")[rid]["status"], "approved")
        full = json.loads(self.ok("show", rid, "--json").stdout)
        self.assertEqual([a["approval_id"] for a in full["artifacts"]], [art["approval_id"]])

        # revoke: the request and its artifacts
        self.assertIn("revoked", self.ok("revoke", rid, "--reason", "oops").stdout)
        self.assertEqual(self.listed("--all")[rid]["status"], "revoked")
        self.fails(1, "is revoked", "approve", rid, "--key", self.w.key("bob"), "--policy", self.w.policy)

    def test_refusals_store_nothing(self):
        rid, _ = self.w.request(contract("contract-refuse"))
        p = ("--policy", self.w.policy)
        self.fails(2, "--key KEY", "approve", rid, *p)
        self.fails(1, "approver carol@example.com may not approve risk class medium",
                   "approve", rid, "--key", self.w.key("carol"), *p)
        self.fails(1, "is not the key of any approver", "approve", rid, "--key", self.w.key("mallory"), *p)
        self.fails(1, "claims identity bob@example.com but is signed with the key of approver alice@example.com",
                   "approve", rid, "--key", self.w.key("alice"), "--identity", "bob@example.com", *p)
        self.fails(1, "exceeds the policy's maximum approval lifetime of 7200s",
                   "approve", rid, "--key", self.w.key("alice"), "--expires", "1d", *p)
        self.fails(2, "not a duration", "approve", rid, "--key", self.w.key("alice"), "--expires", "soon", *p)
        self.fails(1, "scope time_window is not allowed by the policy",
                   "approve", rid, "--key", self.w.key("alice"), "--scope", "window", *p)
        self.fails(2, "--scope must be single or window", "approve", rid, "--key", self.w.key("alice"),
                   "--scope", "forever", *p)
        self.fails(2, "no approval request", "approve", "apr_unknown", "--key", self.w.key("alice"), *p)
        os.chmod(self.w.key("alice"), 0o644)
        self.fails(2, "accessible by group or others", "approve", rid, "--key", self.w.key("alice"), *p)
        item = self.listed()[rid]
        self.assertEqual((item["status"], item["approvals"]), ("pending", 0))
        self.assertEqual(json.loads(self.ok("show", rid, "--json").stdout)["artifacts"], [])

    def test_self_approval(self):
        rid, _ = self.w.request(contract("contract-self", user="alice@example.com"))
        self.fails(1, "self-approval refused: alice@example.com is the initiating user",
                   "approve", rid, "--key", self.w.key("alice"), "--policy", self.w.policy)

    def test_dual_control_with_stored_policy(self):
        rid, _ = self.w.request(contract("contract-dual", mode="dual_control_required"))
        self.assertEqual(self.listed()[rid]["required_approvals"], 2)
        # no --policy: the trust store the request was decided under
        r = self.ok("approve", rid, "--key", self.w.key("alice"), "--expires", "30m")
        self.assertIn("1 of 2 approvals", r.stderr)
        a = json.loads(r.stdout)
        self.assertEqual((datetime.fromisoformat(a["expires_at"].replace("Z", "+00:00")) -
                          datetime.fromisoformat(a["approved_at"].replace("Z", "+00:00"))).total_seconds(), 1800)
        r = self.ok("approve", rid, "--key", self.w.key("alice"))
        self.assertIn("1 of 2 approvals", r.stderr)  # the same approver twice counts once
        self.assertEqual(self.listed()[rid]["approvals"], 1)
        r = self.ok("approve", rid, "--key", self.w.key("bob"), "--ticket", "CHG-42")
        self.verify_artifact(json.loads(r.stdout), "bob")
        self.assertEqual(json.loads(r.stdout)["ticket_id"], "CHG-42")
        self.assertIn("2 of 2 approvals", r.stderr)
        self.assertEqual(self.listed("--all")[rid]["status"], "approved")

    def test_deny(self):
        rid, _ = self.w.request(contract("contract-deny"))
        self.assertIn("denied", self.ok("deny", rid, "--reason", "not on a Friday").stdout)
        item = self.listed("--all")[rid]
        self.assertEqual((item["status"], item["reason"]), ("denied", "not on a Friday"))
        self.assertNotIn(rid, self.listed())
        self.fails(1, "not pending", "deny", rid)
        self.fails(1, "is denied", "approve", rid, "--key", self.w.key("alice"), "--policy", self.w.policy)
        self.fails(2, "no approval request", "deny", "apr_missing")
        self.fails(2, "no approval request", "revoke", "apr_missing")

    def test_hostile_agent_text_is_escaped(self):
        rid, _ = self.w.request(contract("contract-evil", intent="fine\x1b[2J\x1b[1;1Happroved by security\u202egnp.exe",
                                         why="trust me\r\nWARNING: none"))
        for out in (self.ok("list").stdout, self.ok("show", rid).stdout):
            self.assertNotIn("\x1b", out)
            self.assertNotIn("\u202e", out)
            self.assertNotIn("\r", out)
        self.assertIn("\\u001b[2J", self.ok("list").stdout)
        self.assertIn("\\u202e", self.ok("show", rid).stdout)
        # the JSON form still carries the exact text
        self.assertIn("\u202e", self.listed()[rid]["intent"])

    def test_usage_and_missing_state(self):
        r = subprocess.run([WARRANT, "approvals", "list", "--state-dir", os.path.join(self.w.dir, "nowhere")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no warrant state", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.w.dir, "nowhere")))
        self.w.request(contract("contract-usage"))
        self.fails(2, "unknown verb", "frobnicate")
        self.fails(2, "missing request ID", "show")
        self.fails(2, "unknown option --bogus", "list", "--bogus")
        self.fails(2, "no approval request", "show", "apr_0000")
        self.assertEqual(self.ok("list", "--json").stdout.strip()[0], "[")

    def test_list_while_another_process_writes(self):
        rid, _ = self.w.request(contract("contract-busy"))
        db = sqlite3.connect(os.path.join(self.w.state, "warrant.db"), isolation_level=None, check_same_thread=False)
        db.execute("BEGIN IMMEDIATE")  # a writer (warrantd) holds the write lock for a moment
        start = time.monotonic()
        release = threading.Timer(1.0, lambda: db.execute("COMMIT"))
        release.start()
        try:
            # both wait for the lock (within the store's busy timeout)
            # instead of failing with "database is locked"
            self.assertIn(rid, self.listed())
            r = self.ok("approve", rid, "--key", self.w.key("alice"), "--policy", self.w.policy)
            self.assertGreaterEqual(time.monotonic() - start, 0.95)
            self.verify_artifact(json.loads(r.stdout), "alice")
        finally:
            release.join()
            db.close()


class RunWithApproval(unittest.TestCase):
    """`warrant run` queues the request, an approver approves, the next run
    consumes the approval exactly once (design.md, the CLI)."""

    def setUp(self):
        self.w = World()
        self.addCleanup(self.w.tmp.cleanup)
        doc = contract("contract-run")
        doc["commands"][0].update({"exec": {"argv": ["cat", self.w.note]}, "cwd": self.w.ws,
                                   "read_paths": [self.w.ws]})
        self.contract = self.write("run.json", doc)

    def write(self, name, doc):
        path = os.path.join(self.w.dir, name)
        with open(path, "w") as f:
            json.dump(doc, f)
        os.chmod(path, 0o644)
        return path

    def run_contract(self, *approvals):
        extra = [a for path in approvals for a in ("--approval", path)]
        p = subprocess.run([WARRANT, "run", "--policy", self.w.policy, "--state-dir", self.w.state, *extra,
                            self.contract], capture_output=True, text=True, timeout=120)
        return p, (json.loads(p.stdout) if p.stdout.strip() else None)

    def approve(self, key="alice"):
        rid = next(iter(json.loads(self.w.warrant("list", "--json").stdout)))["request_id"]
        r = self.w.warrant("approve", rid, "--key", self.w.key(key), "--policy", self.w.policy)
        self.assertEqual(r.returncode, 0, r.stderr)
        return rid, json.loads(r.stdout)

    def test_blocked_then_approved_then_replay_refused(self):
        p, r = self.run_contract()
        self.assertEqual((p.returncode, r["status"]), (1, "blocked"), p.stderr)
        rid, art = self.approve()
        self.assertIn(rid, r["error"])
        p, r = self.run_contract()
        self.assertEqual((p.returncode, r["status"]), (0, "success"), p.stderr + json.dumps(r))
        used = json.dumps(r)
        self.assertIn(art["approval_id"], used)
        self.assertIn("alice@example.com", used)
        status = json.loads(self.w.warrant("show", rid, "--json").stdout)["status"]
        self.assertEqual(status, "consumed")
        # single_execution: a second run is blocked, also when the artifact is handed in again
        p, r = self.run_contract(self.write("approval.json", art))
        self.assertEqual((p.returncode, r["status"]), (1, "blocked"))
        self.assertIn("has already been used", r["error"])

    def test_secret_printed_as_bwrap_stays_out_of_receipt_and_store(self):
        # Issue 9: the first stderr bytes were kept raw to detect bwrap's own
        # errors, so "bwrap: <secret>" put the released secret, unredacted,
        # into the signed receipt's error and the store.
        secret = "tok-" + hashlib.sha256(b"issue 9").hexdigest()[:24]
        with open(self.w.policy) as f:
            pol = f.read()
        with open(self.w.policy, "w") as f:
            f.write(pol.replace("allow_commands: [git, cat]", "allow_commands: [git, cat, sh]\nallow_indirect_exec: [sh]")
                    .replace("allow_secret_refs: false", "allow_secret_refs: true"))
        script = os.path.join(self.w.ws, "leak.sh")
        with open(script, "w") as f:
            f.write('echo "bwrap: $TOKEN" >&2\nexit 1\n')
        os.chmod(script, 0o644)
        doc = contract("contract-leak")
        doc["commands"][0].update({"exec": {"argv": ["sh", script]}, "cwd": self.w.ws, "read_paths": [self.w.ws],
                                   "secret_refs": ["TOKEN"]})
        self.contract = self.write("leak.json", doc)
        p, r = self.run_contract()
        self.assertEqual(r["status"], "blocked", p.stderr)
        self.assertIn("approval", r["error"])
        os.makedirs(os.path.join(self.w.state, "secrets"), mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(self.w.state, "secrets", "TOKEN"), os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, secret.encode())
        os.close(fd)
        self.approve()
        p, r = self.run_contract()
        self.assertEqual(r["status"], "failed", p.stderr + json.dumps(r))
        self.assertEqual(r["error"], "command cmd_1 exited with status 1")
        self.assertNotIn(secret, json.dumps(r))
        self.assertNotIn(secret, p.stdout + p.stderr)
        for name in os.listdir(self.w.state):  # the store (and its WAL) never holds it either
            path = os.path.join(self.w.state, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    self.assertNotIn(secret.encode(), f.read(), name)

    def test_time_window_reusable_and_not_consumed(self):
        with open(self.w.policy) as f:
            text = f.read()
        with open(self.w.policy, "w") as f:
            f.write(text.replace("allow_time_window: false", "allow_time_window: true"))
        p, r = self.run_contract()
        self.assertEqual(r["status"], "blocked")
        rid = next(iter(json.loads(self.w.warrant("list", "--json").stdout)))["request_id"]
        a = self.w.warrant("approve", rid, "--key", self.w.key("alice"), "--policy", self.w.policy, "--scope", "window")
        self.assertEqual(a.returncode, 0, a.stderr)
        for _ in range(2):
            p, r = self.run_contract()
            self.assertEqual((p.returncode, r["status"]), (0, "success"), p.stderr + json.dumps(r))
        status = json.loads(self.w.warrant("show", rid, "--json").stdout)["status"]
        self.assertEqual(status, "approved")

    def test_tampered_and_revoked_artifacts_block(self):
        self.run_contract()
        rid, art = self.approve()
        art["reason"] = "edited after signing"
        p, r = self.run_contract(self.write("tampered.json", art))
        self.assertEqual((p.returncode, r["status"]), (1, "blocked"))
        self.assertIn("signature does not verify", r["error"])
        self.assertEqual(self.w.warrant("revoke", art["approval_id"]).returncode, 0)
        p, r = self.run_contract()
        self.assertEqual((p.returncode, r["status"]), (1, "blocked"))
        self.assertIn("has been revoked", r["error"])

    def test_concurrent_runs_one_approval_one_execution(self):
        self.run_contract()
        self.approve()
        argv = [WARRANT, "run", "--policy", self.w.policy, "--state-dir", self.w.state, self.contract]
        procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(RUNNERS)]
        results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
        statuses = sorted(json.loads(out)["status"] for out, _, _ in results)
        self.assertEqual(statuses, ["blocked"] * (RUNNERS - 1) + ["success"], [e for _, e, _ in results])
        ran = [json.loads(out) for out, _, _ in results if json.loads(out)["status"] == "success"]
        self.assertEqual(ran[0]["stdout_hash"], "sha256:" + hashlib.sha256(b"approved content\n").hexdigest())
        blocked = [json.loads(out) for out, _, _ in results if json.loads(out)["status"] == "blocked"]
        for r in blocked:  # lost the race either at the check or at the atomic consumption
            self.assertRegex(r["error"], "has already been used|approval already used")
            self.assertIsNone(r.get("exit_code"))


RUNNERS = 12

if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
