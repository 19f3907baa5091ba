#!/usr/bin/env python3
"""Raw-protocol tests of warrantd over stdio, WebSocket and Streamable HTTP:
hostile frames get the right JSON-RPC error (or HTTP status) and the
connection keeps serving; lifecycle, auth, Origin/Host, limits, streaming,
cancellation and shutdown behave as mcp-checklist.md requires."""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mcpraw  # noqa: E402
from mcpraw import INIT, INITIALIZED, contract  # noqa: E402

TOKEN = "tok-tester-0123456789abcdef"
OTHER = "tok-other-0123456789abcdefgh"
WARRANT = os.path.join(mcpraw.BUILD, "clients", "warrant")


def req(i, method, params=None):
    m = {"jsonrpc": "2.0", "id": i, "method": method}
    if params is not None:
        m["params"] = params
    return m


def call(i, name, args, token=None):
    p = {"name": name, "arguments": args}
    if token is not None:
        p["_meta"] = {"progressToken": token}
    return req(i, "tools/call", p)


class StreamCases:
    """Cases shared by the message-stream transports (stdio, WebSocket).
    Subclasses provide open() returning an object with send/send_raw/recv."""

    def init(self, c, version="2025-11-25"):
        m = dict(INIT)
        m["params"] = dict(INIT["params"], protocolVersion=version)
        c.send(m)
        r = c.recv()
        c.send(INITIALIZED)
        return r

    def assert_serving(self, c, i=900):
        c.send(req(i, "ping"))
        self.assertEqual(c.recv(), {"jsonrpc": "2.0", "id": i, "result": {}})

    def assert_error(self, msg, code, has_id=None):
        self.assertIn("error", msg, msg)
        self.assertEqual(msg["error"]["code"], code, msg)
        self.assertIsInstance(msg["error"]["message"], str)
        self.assertNotIn("result", msg)
        if has_id is None:
            self.assertNotIn("id", msg)  # the SDK rejects "id": null
        else:
            self.assertEqual(msg["id"], has_id)
            self.assertIs(type(msg["id"]), type(has_id))

    def test_lifecycle(self):
        c = self.open()
        # ping answers before initialize, with exactly {}
        self.assert_serving(c, 0)
        c.send(req(1, "tools/list"))
        self.assert_error(c.recv(), -32600, 1)
        c.send(req(2, "initialize", {"capabilities": {}}))
        e = c.recv()
        self.assert_error(e, -32602, 2)
        self.assertIn("2025-11-25", e["error"]["data"]["supported"])
        r = self.init(c, "1999-01-01")
        self.assertEqual(r["result"]["protocolVersion"], "2025-11-25")
        caps = r["result"]["capabilities"]
        self.assertEqual(caps["tools"], {"listChanged": False})
        self.assertEqual(caps["logging"], {})
        self.assertNotIn("resources", caps)
        self.assertIn("propose_contract", r["result"]["instructions"])
        c.send(req(3, "initialize", INIT["params"]))
        self.assert_error(c.recv(), -32600, 3)
        c.send(req("4", "tools/list"))
        tools = c.recv()
        self.assertEqual(tools["id"], "4")
        names = [t["name"] for t in tools["result"]["tools"]]
        self.assertEqual(names, ["check", "propose_contract", "run", "run_capsule", "get_receipt", "get_checkpoint",
                                 "get_approval", "submit_approval", "describe_policy"])
        for t in tools["result"]["tools"]:
            self.assertTrue(t["description"])
            self.assertEqual(t["inputSchema"]["type"], "object")
            self.assertEqual(t["outputSchema"]["type"], "object")
            self.assertNotIn("csc.contract.v0.1.schema.json", json.dumps(t["inputSchema"]))
        ann = {t["name"]: t["annotations"] for t in tools["result"]["tools"]}
        self.assertTrue(ann["check"]["readOnlyHint"])
        self.assertFalse(ann["run"]["readOnlyHint"])
        self.assertTrue(ann["run"]["destructiveHint"])
        c.send(req(5, "logging/setLevel", {"level": "info"}))
        self.assertEqual(c.recv(), {"jsonrpc": "2.0", "id": 5, "result": {}})
        c.send(req(6, "logging/setLevel", {"level": "loud"}))
        self.assert_error(c.recv(), -32602, 6)
        c.send(req(7, "server/discover"))
        self.assert_error(c.recv(), -32601, 7)
        c.send(req(8, "resources/list"))
        self.assert_error(c.recv(), -32601, 8)
        c.send(req(9, "tools/list", {"cursor": "bogus"}))
        self.assert_error(c.recv(), -32602, 9)

    def test_version_echo(self):
        c = self.open()
        self.assertEqual(self.init(c, "2025-06-18")["result"]["protocolVersion"], "2025-06-18")

    def test_malformed_frames(self):
        c = self.open()
        self.init(c)
        cases = [
            (b'{"jsonrpc":"2.0","id":1,"method":"ping"', -32700),     # truncated
            (b'\xff\xfe{"jsonrpc":"2.0"}', -32700),                  # invalid UTF-8
            (b'{"jsonrpc":"2.0","id":1,"method":"p\xc3\x28"}', -32700),
            (b'{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}', -32700),  # duplicate key
            (b"[" * 200 + b"]" * 200, -32600),                        # nesting
            (b'"just a string"', -32600),
            (b"42", -32600),
            (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', -32600),  # batch
            (b'{"jsonrpc":"2.0","id":null,"method":"ping"}', -32600),
            (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', -32600),
            (b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}', -32600),
            (b'{"jsonrpc":"2.0","id":{},"method":"ping"}', -32600),
            # NUL inside strings is refused by the parser ("check\u0000x" never passes for "check")
            (b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"check\\u0000x"}}', -32700),
            (b'{"jsonrpc":"2.0","id":7,"method":"ping\\u0000"}', -32700),
        ]
        for i, (raw, code) in enumerate(cases):
            with self.subTest(raw=raw[:40]):
                c.send_raw(raw)
                self.assert_error(c.recv(), code)
                self.assert_serving(c, 1000 + i)
        with_id = [
            (b'{"jsonrpc":"1.0","id":7,"method":"ping"}', -32600),
            (b'{"jsonrpc":"2.0","id":7,"method":5}', -32600),
            (b'{"jsonrpc":"2.0","id":7}', -32600),
            (b'{"jsonrpc":"2.0","id":7,"method":"tools/list","params":[1]}', -32602),
            (b'{"jsonrpc":"2.0","id":7,"method":"no/such"}', -32601),
            (b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"nope","arguments":{}}}', -32602),
            (b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"check","arguments":[1]}}', -32602),
            (b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"arguments":{}}}', -32602),
        ]
        for raw, code in with_id:
            with self.subTest(raw=raw[:60]):
                c.send_raw(raw)
                self.assert_error(c.recv(), code, 7)
        # notifications are never answered, even unknown or malformed ones
        c.send_raw(b'{"jsonrpc":"2.0","method":"notifications/whatever"}')
        c.send_raw(b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":12345}}')
        c.send_raw(b'{"jsonrpc":"2.0","method":"x","params":7}')
        c.send_raw(b'{"jsonrpc":"2.0","id":"wr-unknown","result":{}}')  # a response to nothing
        c.send_raw(b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}')
        self.assert_serving(c, 2000)

    def test_ids_echoed_exactly(self):
        c = self.open()
        self.init(c)
        for i in ["1", 1, 0, -5, "", "ü-id", 2**53]:
            c.send(req(i, "ping"))
            r = c.recv()
            self.assertEqual(r["id"], i)
            self.assertIs(type(r["id"]), type(i))

    def test_oversized(self):
        c = self.open()
        self.init(c)
        big = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"' + b"x" * 70000 + b'"}}'
        c.send_raw(big)
        e = c.recv()
        self.assert_error(e, -32600)
        self.assertIn("limit", e["error"]["message"])
        self.assert_serving(c)

    def test_tool_errors_are_results(self):
        c = self.open()
        self.init(c)
        # schema-invalid arguments: isError with a JSON pointer, not a JSON-RPC error
        c.send(call(1, "check", {"contract": {"version": "csc.v0.1"}}))
        r = c.recv()["result"]
        self.assertTrue(r["isError"])
        # no structuredContent: clients validate it against outputSchema even on errors
        self.assertNotIn("structuredContent", r)
        self.assertTrue(json.loads(r["content"][1]["text"])["pointer"].startswith("/contract"))
        c.send(call(2, "check", {"contract": contract(self.fx.ws, ["rm", "-rf", "/"])}))
        r = c.recv()["result"]
        self.assertTrue(r["isError"])
        self.assertEqual(r["structuredContent"]["decision"], "deny")
        c.send(call(3, "check", {"contract": contract(self.fx.ws, ["echo", "hi"])}))
        r = c.recv()["result"]
        self.assertNotIn("isError", r)
        self.assertEqual(r["structuredContent"]["decision"], "allow")
        # the text is a one-line summary, not a second copy of the result
        self.assertEqual(len(r["content"]), 1)
        self.assertTrue(r["content"][0]["text"].startswith("decision: allow"))
        c.send(call(4, "get_receipt", {"execution_id": "exe_nope"}))
        self.assertTrue(c.recv()["result"]["isError"])
        c.send(call(5, "describe_policy", {}))
        r = c.recv()["result"]
        self.assertEqual(r["structuredContent"]["agent_id"], "tester")

    def test_identity_mismatch_is_refused_with_receipt(self):
        c = self.open()
        self.init(c)
        c.send(call(1, "run", {"contract": contract(self.fx.ws, ["echo", "hi"], agent="mallory")}))
        r = c.recv(30)["result"]
        self.assertTrue(r["isError"])
        self.assertIn("identity mismatch", r["structuredContent"]["error"])
        self.assertEqual(r["structuredContent"]["receipt"]["status"], "blocked")
        c.send(call(2, "propose_contract", {"contract": contract(self.fx.ws, ["echo", "hi"], agent="mallory")}))
        self.assertTrue(c.recv(30)["result"]["isError"])
        c.send(call(3, "check", {"contract": contract(self.fx.ws, ["echo", "hi"], agent="mallory")}))
        r = c.recv(30)["result"]
        self.assertTrue(r["isError"])
        self.assertIn("identity mismatch", r["content"][0]["text"])

    def test_propose_then_run_streams_progress(self):
        c = self.open()
        self.init(c)
        ct = contract(self.fx.ws, ["seq", "1", "2000"])
        c.send(call(1, "propose_contract", {"contract": ct}))
        p = c.recv(30)["result"]["structuredContent"]
        self.assertEqual(p["contract_id"], ct["contract_id"])
        c.send(call(2, "run", {"contract_id": ct["contract_id"]}, token="tok-1"))
        progress, final = [], None
        while final is None:
            m = c.recv(60)
            if m.get("method") == "notifications/progress":
                self.assertEqual(m["params"]["progressToken"], "tok-1")
                progress.append(m["params"])
            else:
                final = m
        self.assertEqual(final["id"], 2)
        sc = final["result"]["structuredContent"]
        self.assertEqual(sc["status"], "success")
        self.assertTrue(sc["stdout"].startswith("1\n2\n3\n"))
        self.assertEqual(sc["receipt"]["status"], "success")
        self.assertIn("signature", sc["receipt"])
        self.assertTrue(progress)
        values = [p["progress"] for p in progress]
        self.assertEqual(values, sorted(set(values)))  # strictly increasing
        self.assertIn("1\n2\n", progress[0]["message"])
        c.send(call(3, "get_receipt", {"execution_id": sc["execution_id"]}))
        r = c.recv()["result"]["structuredContent"]["receipt"]
        self.assertEqual(r, sc["receipt"])

    def test_cancel_run(self):
        c = self.open()
        self.init(c)
        c.send(call(1, "run", {"contract": contract(self.fx.ws, ["sleep", "30"])}, token=1))
        time.sleep(1.0)
        t0 = time.monotonic()
        c.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1, "reason": "test"}})
        # no response for the cancelled request: the next message is the ping's
        self.assert_serving(c, 77)
        c.send(call(2, "run", {"contract": contract(self.fx.ws, ["echo", "after"])}))
        m = c.recv(30)
        while m.get("method"):
            m = c.recv(30)
        self.assertEqual(m["id"], 2)
        self.assertLess(time.monotonic() - t0, 15)
        out = subprocess.run([WARRANT, "receipts", "list", "--state-dir", self.fx.state],
                             capture_output=True, text=True)
        self.assertIn("failed", out.stdout, out.stdout + out.stderr)

    def test_run_does_not_block_ping(self):
        c = self.open()
        self.init(c)
        c.send(call(1, "run", {"contract": contract(self.fx.ws, ["sleep", "2"])}))
        t0 = time.monotonic()
        self.assert_serving(c, 5)
        self.assertLess(time.monotonic() - t0, 1.0)
        c.send(call(6, "check", {"contract": contract(self.fx.ws, ["echo", "x"])}))
        self.assertEqual(c.recv()["id"], 6)
        self.assertLess(time.monotonic() - t0, 1.5)
        self.assertEqual(c.recv(30)["id"], 1)


    def test_logging_after_set_level(self):
        c = self.open()
        self.init(c)
        c.send(req(1, "logging/setLevel", {"level": "info"}))
        c.recv()
        c.send(call(2, "run", {"contract": contract(self.fx.ws, ["true"])}))
        self.assertEqual(c.recv(30)["id"], 2)
        log = c.recv(10)
        self.assertEqual(log["method"], "notifications/message")
        self.assertEqual(log["params"]["level"], "info")
        self.assertIn("run success", log["params"]["data"])

    def test_wait_for_approval_sends_progress(self):
        c = self.open()
        self.init(c)
        ct = contract(self.fx.ws, ["echo", "x"], mode="human_required")
        t0 = time.monotonic()
        c.send(call(1, "run", {"contract": ct, "wait_for_approval_sec": 2}, token="w"))
        m = c.recv(30)
        self.assertEqual(m["method"], "notifications/progress")
        self.assertIn("waiting for approval", m["params"]["message"])
        while "id" not in m:
            m = c.recv(30)
        self.assertGreaterEqual(time.monotonic() - t0, 1.5)
        r = m["result"]
        self.assertTrue(r["isError"])
        self.assertTrue(r["structuredContent"]["pending"])
        rid = r["structuredContent"]["approval_request_id"]
        c.send(call(2, "get_approval", {"request_id": rid}))
        self.assertEqual(c.recv()["result"]["structuredContent"]["status"], "pending")

    def open_eliciting(self):
        """A client that declares elicitation, initialized."""
        c = self.open()
        m = dict(INIT)
        m["params"] = dict(INIT["params"], capabilities={"elicitation": {}})
        c.send(m)
        c.recv()
        c.send(INITIALIZED)
        return c

    def elicit(self, answer):
        c = self.open_eliciting()
        c.send(call(1, "run", {"contract": contract(self.fx.ws, ["echo", "approved"], mode="human_required")}))
        e = c.recv(30)
        self.assertEqual(e["method"], "elicitation/create")
        self.assertIn("echo", e["params"]["message"])
        self.assertEqual(e["params"]["requestedSchema"]["type"], "object")
        self.assert_serving(c, 55)  # the loop still serves while the human decides
        c.send({"jsonrpc": "2.0", "id": e["id"], "result": answer})
        m = c.recv(30)
        while "id" not in m:
            m = c.recv(30)
        return m["result"]

    def test_elicitation_accept_runs(self):
        r = self.elicit({"action": "accept", "content": {"approve": True}})
        self.assertNotIn("isError", r, r)
        self.assertEqual(r["structuredContent"]["stdout"], "approved\n")
        [a] = r["structuredContent"]["receipt"]["approvals"]
        # recorded for the person the token file names, never for the agent
        self.assertEqual((a["identity"], a["method"], a["attestation"]),
                         ("carol@example.com", "elicitation", "client"))

    def own_session_never_approves(self):
        """Issue 11: without a token marked elicitation:human (stdio has no
        token at all), the agent's own session is never asked, and the run
        stays blocked with the reason."""
        c = self.open_eliciting()
        c.send(call(1, "run", {"contract": contract(self.fx.ws, ["echo", "self"], mode="human_required")}))
        m = c.recv(30)
        self.assertNotEqual(m.get("method"), "elicitation/create")
        while "id" not in m:
            m = c.recv(30)
        sc = m["result"]["structuredContent"]
        self.assertEqual(sc["status"], "blocked")
        self.assertEqual(sc["receipt"]["approvals"], [])
        self.assertIn("agent's own session is not an approval", sc["receipt"]["error"])

    def test_elicitation_decline_stays_pending(self):
        r = self.elicit({"action": "accept", "content": {"approve": False}})
        self.assertTrue(r["isError"])
        self.assertEqual(r["structuredContent"]["status"], "blocked")


class StdioTest(StreamCases, unittest.TestCase):
    test_elicitation_accept_runs = StreamCases.own_session_never_approves
    test_elicitation_decline_stays_pending = StreamCases.own_session_never_approves

    def setUp(self):
        self.fx = mcpraw.Fixture()
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            if c.p.poll() is None:
                # stdin EOF: warrantd must finish and exit 0 (and leak-free under ASan)
                try:
                    c.p.stdin.close()
                except OSError:
                    pass
                try:
                    self.assertEqual(c.p.wait(30), 0)
                except subprocess.TimeoutExpired:
                    c.p.kill()
                    c.p.wait()
                    self.fail("warrantd did not exit after stdin EOF")
            err = getattr(c, "stderr", None)
            if err is None:
                err = c.err.text(wait=True)
            self.assertNotIn("Sanitizer", err or "")
            self.assertNotIn("runtime error", err or "")
            for f in (c.p.stdin, c.p.stdout, c.p.stderr):
                try:
                    f.close()
                except Exception:
                    pass
        self.fx.cleanup()

    def open(self, *extra):
        c = mcpraw.Stdio(self.fx, "--max-message-bytes", "65536", *extra)
        self.clients.append(c)
        return c

    def test_oversized_line_resyncs(self):
        c = self.open()
        self.init(c)
        c.send_raw(b"x" * 200000 + b"\n" + json.dumps(req(3, "ping")).encode() + b"\r\n\n\n", frame=False)
        self.assert_error(c.recv(), -32600)
        self.assertEqual(c.recv(), {"jsonrpc": "2.0", "id": 3, "result": {}})

    def test_batch_on_2025_03_26(self):
        c = self.open()
        self.init(c, "2025-03-26")
        c.send_raw(json.dumps([req(1, "ping"), {"jsonrpc": "2.0", "method": "notifications/x"},
                               req(2, "tools/list"), req(3, "initialize", INIT["params"])]).encode())
        arr = c.recv()
        self.assertIsInstance(arr, list)
        self.assertEqual([m["id"] for m in arr], [1, 2, 3])
        self.assertEqual(arr[0]["result"], {})
        self.assertEqual(arr[2]["error"]["code"], -32600)
        c.send_raw(b'[{"jsonrpc":"2.0","method":"notifications/x"}]')
        self.assert_serving(c)  # only notifications: nothing was sent
        # check runs on the worker pool elsewhere, but inside a batch it is
        # answered in the batch's one array
        c.send_raw(json.dumps([req(4, "ping"), call(5, "check", {"contract": contract(self.fx.ws, ["echo", "hi"])})]).encode())
        arr = c.recv()
        self.assertEqual([m["id"] for m in arr], [4, 5])
        self.assertEqual(arr[1]["result"]["structuredContent"]["decision"], "allow")
        self.assert_serving(c)

    def test_pipelined_burst_then_eof(self):
        # more output than a pipe holds (stdout hits EAGAIN) and stdin closed
        # with requests still unread: every request gets exactly one answer
        # (the order is not promised: a message stream may answer from the pool)
        ct = contract(self.fx.ws, ["echo", "hi"])
        msgs = [INIT] + [call(i, "check", {"contract": ct}) for i in range(1, 3001)]
        p = subprocess.run([mcpraw.WARRANTD, "--stdio", "--state-dir", self.fx.state, "--policy", self.fx.policy,
                            "--agent-id", "tester"], input="".join(json.dumps(m) + "\n" for m in msgs).encode(),
                           capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0)
        replies = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual(sorted(m["id"] for m in replies), list(range(0, 3001)))
        self.assertEqual(replies[0]["id"], 0)  # initialize is answered inline, first
        self.assertTrue(all("result" in m and not m["result"].get("isError") for m in replies))

    def test_pipelined_slow_reader_gets_whole_lines(self):
        # Responses leave in batches (one writev of many lines): a reader that
        # takes a few bytes at a time makes every write short, ending inside
        # a line; each line must still arrive whole, once, in one piece.
        ct = contract(self.fx.ws, ["echo", "hi"])
        n = 600
        msgs = [INIT] + [call(i, "check", {"contract": ct}) for i in range(1, n + 1)]
        p = subprocess.Popen([mcpraw.WARRANTD, "--stdio", "--state-dir", self.fx.state, "--policy", self.fx.policy,
                              "--agent-id", "tester"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        err = mcpraw.StderrDrain(p.stderr)
        feeder = threading.Thread(target=lambda: (p.stdin.write("".join(json.dumps(m) + "\n" for m in msgs).encode()),
                                                  p.stdin.close()))
        feeder.start()
        time.sleep(1.0)  # let replies pile up against the full pipe
        out = b""
        while True:
            chunk = os.read(p.stdout.fileno(), 997)  # odd sizes: writes end anywhere
            if not chunk:
                break
            out += chunk
            if len(out) < 200000:
                time.sleep(0.001)
        feeder.join(30)
        self.assertEqual(p.wait(60), 0)
        self.assertNotIn("Sanitizer", err.text(wait=True))
        lines = out.split(b"\n")
        self.assertEqual(lines[-1], b"")
        replies = [json.loads(line) for line in lines[:-1]]
        self.assertEqual(sorted(m["id"] for m in replies), list(range(0, n + 1)))
        self.assertTrue(all(m["result"]["structuredContent"]["decision"] == "allow" for m in replies[1:]))

    def test_eof_finishes_running_command(self):
        c = self.open()
        self.init(c)
        c.send(call(1, "run", {"contract": contract(self.fx.ws, ["sleep", "1"])}))
        c.p.stdin.close()
        self.assertEqual(c.recv(30)["id"], 1)
        self.assertEqual(c.p.wait(30), 0)

    def test_sigterm_cancels_with_receipt(self):
        c = self.open()
        self.init(c)
        c.send(call(1, "run", {"contract": contract(self.fx.ws, ["sleep", "30"])}))
        time.sleep(1.0)
        t0 = time.monotonic()
        c.p.send_signal(signal.SIGTERM)
        self.assertEqual(c.p.wait(20), 0)
        self.assertLess(time.monotonic() - t0, 15)
        out = subprocess.run([WARRANT, "receipts", "list", "--state-dir", self.fx.state],
                             capture_output=True, text=True)
        self.assertIn("failed", out.stdout)

    def test_sighup_bad_policy_keeps_old(self):
        c = self.open()
        self.init(c)
        with open(self.fx.policy, "a") as f:
            f.write("allow_commands: [oops]\n")  # duplicate key: invalid
        c.p.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        c.send(call(1, "check", {"contract": contract(self.fx.ws, ["echo", "x"])}))
        self.assertEqual(c.recv()["result"]["structuredContent"]["decision"], "allow")
        c.p.stdin.close()
        c.p.wait(10)
        err = c.err.text(wait=True)
        self.assertIn("previous policy stays", err)

    def test_stdout_is_protocol_only(self):
        c = self.open()
        self.init(c)
        c.send(call(1, "run", {"contract": contract(self.fx.ws, ["echo", "out"])}))
        c.send(req(2, "ping"))
        c.p.stdin.close()
        data = c.p.stdout.read()
        c.p.wait(10)
        for line in data.splitlines():
            json.loads(line)  # every line is one JSON-RPC message

    def test_heartbeats_while_silent(self):
        c = self.open("--heartbeat-sec", "1")
        self.init(c)
        c.send(call(1, "run", {"contract": contract(self.fx.ws, ["sleep", "3"])}, token=5))
        beats = []
        m = c.recv(30)
        while "id" not in m:
            beats.append(m["params"])
            m = c.recv(30)
        self.assertGreaterEqual(len(beats), 2, beats)
        self.assertTrue(all(b["message"].startswith("running (") for b in beats))
        self.assertEqual([b["progress"] for b in beats], sorted({b["progress"] for b in beats}))

    def test_concurrency_limit(self):
        c = self.open("--max-runs-per-client", "2")
        self.init(c)
        for i in range(3):
            c.send(call(i, "run", {"contract": contract(self.fx.ws, ["sleep", "2"])}))
        first = c.recv(10)
        self.assertEqual(first["id"], 2)
        self.assertTrue(first["result"]["isError"])
        self.assertIn("too many concurrent runs", first["result"]["content"][0]["text"])
        self.assertEqual(sorted([c.recv(30)["id"], c.recv(30)["id"]]), [0, 1])


class WebSocketTest(StreamCases, unittest.TestCase):
    extra = ()

    def setUp(self):
        self.fx = mcpraw.Fixture()
        self.srv = mcpraw.Listener(self.fx, "--max-message-bytes", "65536", *self.extra)
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        self.assertEqual(self.srv.stop(), 0)
        self.assertNotIn(TOKEN, self.srv.stderr)
        self.assertNotIn("Sanitizer", self.srv.stderr)
        self.assertNotIn("runtime error", self.srv.stderr)
        self.fx.cleanup()

    def open(self, **kw):
        kw.setdefault("token", TOKEN)
        c = mcpraw.WS(self.srv.port, **kw)
        self.socks.append(c)
        self.assertEqual(c.status, 101)
        return c

    def test_server_secrets_never_exposed(self):
        # Even a policy that allows reading it cannot hand the token file
        # (or the state dir) to a sandbox.
        with open(self.fx.policy, "w") as f:
            f.write(mcpraw.POLICY.format(ws=self.fx.ws).replace(
                "allowed_read_prefixes: [%s]" % self.fx.ws, "allowed_read_prefixes: [%s]" % self.fx.tmp))
        self.srv.p.send_signal(signal.SIGHUP)
        c = self.open()
        self.init(c)
        deadline = time.monotonic() + 10
        while True:
            c.send(call(1, "describe_policy", {}))
            desc = json.dumps(c.recv())
            if self.fx.tmp + '"' in desc or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for declared in (self.fx.tokens, self.fx.tmp):
            ct = contract(self.fx.ws, ["cat", self.fx.tokens])
            ct["commands"][0]["read_paths"] = [declared]
            c.send(call(2, "run", {"contract": ct}))
            r = c.recv()
            self.assertTrue(r["result"].get("isError"), r)
            text = json.dumps(r)
            self.assertIn("would expose", text)
            self.assertNotIn(TOKEN, text)

    def test_handshake_refusals(self):
        def status(**kw):
            c = mcpraw.WS(self.srv.port, **kw)
            c.close()
            return c.status
        self.assertEqual(status(), 401)
        self.assertEqual(status(token="wrong-token-0123456789"), 401)
        self.assertEqual(status(token=TOKEN, headers={"Origin": "http://evil.example"}), 403)
        self.assertEqual(status(token=TOKEN, headers={"Host": "evil.example:%d" % self.srv.port}), 403)
        self.assertEqual(status(token=TOKEN, path="/other"), 404)
        ok = "http://localhost:%d" % self.srv.port
        self.assertEqual(status(token=TOKEN, headers={"Origin": ok}), 101)
        self.assertEqual(status(query_token=TOKEN), 101)  # the SDK cannot set headers

    def test_binary_frame_closes_1003(self):
        c = self.open()
        self.init(c)
        c.frame(2, b'{"jsonrpc":"2.0","id":1,"method":"ping"}')
        op, data = c.recv_frame()
        self.assertEqual(op, 8)
        self.assertEqual(struct.unpack("!H", data[:2])[0], 1003)

    def assert_fails_1002(self, c, why):
        """A close frame with 1002 (and the reason), then the TCP close."""
        op, data = c.recv_frame(5)
        self.assertEqual(op, 8, data)
        self.assertEqual(struct.unpack("!H", data[:2])[0], 1002, data)
        self.assertIn(why, data[2:].decode())
        c.s.settimeout(5)
        self.assertEqual(c.s.recv(1), b"")

    def test_unmasked_frames_close_the_connection(self):
        """RFC 6455 5.1: a server MUST close the connection on an unmasked
        client frame (1002); lws 4.1 accepted them. Every place a frame can
        be: a message, a continuation, a control frame; other connections
        keep serving, SIGTERM still stops the server at once."""
        msg = json.dumps(req(7, "ping")).encode()
        cases = [
            [(1, msg, True, False)],
            [(1, msg[:10], False, True), (0, msg[10:], True, False)],
            [(9, b"hi", True, False)],
        ]
        for frames in cases:
            with self.subTest(frames=[f[:1] + f[2:] for f in frames]):
                c = self.open_ready()
                c.s.sendall(b"".join(c.frame_bytes(*f) for f in frames))
                self.assert_fails_1002(c, "unmasked frame")
        self.assert_serving(self.open_ready())
        self.assertIn("websocket: closing (1002): unmasked frame", self.srv.err.text())
        kept = self.open_ready()
        t0 = time.monotonic()
        self.srv.p.terminate()
        self.srv.p.wait(10)
        self.assertLess(time.monotonic() - t0, 5)
        kept.close()

    def test_frame_rules(self):
        """What a server must refuse (RFC 6455 5.2 - 5.5), and what it must
        answer: a ping gets its pong, a close gets a close."""
        for frames, why in [
            ([(0x41, b"{}")], "reserved bits set"),                      # RSV1: no extension
            ([(3, b"x")], "unknown opcode"),
            ([(9, b"x", False)], "fragmented control frame"),
            ([(9, b"x" * 126)], "control frame over 125 bytes"),
            ([(0, b"{}")], "continuation frame outside a message"),
            ([(1, b"{", False), (1, b"}")], "new message inside a fragmented one"),
        ]:
            with self.subTest(why=why):
                c = self.open_ready()
                c.s.sendall(b"".join(c.frame_bytes(*f) for f in frames))
                self.assert_fails_1002(c, why)
        with self.subTest(why="frame length over 2^63"):  # RFC 6455 5.2: the top bit is 0
            c = self.open_ready()
            c.s.sendall(struct.pack("!BBQ", 0x81, 0x80 | 127, 1 << 63) + os.urandom(4))
            self.assert_fails_1002(c, "frame length over 2^63")
        c = self.open_ready()
        c.frame(9, b"are you there")
        self.assertEqual(c.recv_frame(), (10, b"are you there"))
        # a ping between the fragments of a message, a frame split across
        # reads byte by byte, 16- and 64-bit lengths (the last over the cap)
        msg = json.dumps(req(8, "ping")).encode()
        c.frame(1, msg[:5], fin=False)
        c.frame(9, b"")
        c.frame(0, msg[5:])
        self.assertEqual(c.recv_frame(), (10, b""))
        self.assertEqual(c.recv(), {"jsonrpc": "2.0", "id": 8, "result": {}})
        for b in c.frame_bytes(1, json.dumps(req(9, "ping")).encode()):
            c.s.sendall(bytes([b]))
            time.sleep(0.002)
        self.assertEqual(c.recv()["id"], 9)
        big = json.dumps(req(10, "ping", {"pad": "x" * 300})).encode()
        c.frame(1, big)
        self.assertEqual(c.recv()["id"], 10)
        c.frame(1, b" " * 70000)  # 64-bit length, over --max-message-bytes 65536
        self.assert_error(c.recv(), -32600)
        self.assert_serving(c)
        c.frame(8, struct.pack("!H", 1000))
        op, data = c.recv_frame()
        self.assertEqual((op, struct.unpack("!H", data[:2])[0]), (8, 1000))

    def test_unmasked_frame_over_tls(self):
        """Under TLS only the server's TLS session sees the frames: they are
        checked there too."""
        import ssl
        cert, key = os.path.join(self.fx.tmp, "c.pem"), os.path.join(self.fx.tmp, "k.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"],
                       check=True, capture_output=True)
        srv = mcpraw.Listener(self.fx, "--tls-cert", cert, "--tls-key", key)
        try:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            c = mcpraw.WS(srv.port, token=TOKEN, tls=ctx)
            self.assertEqual(c.status, 101)
            self.init(c)
            self.assert_serving(c)
            # a large message arrives in several TLS records
            c.send(req(11, "ping", {"pad": "x" * 40000}))
            self.assertEqual(c.recv()["id"], 11)
            c.frame(1, json.dumps(req(12, "ping")).encode(), masked=False)
            self.assert_fails_1002(c, "unmasked frame")
        finally:
            self.assertEqual(srv.stop(), 0)

    def open_ready(self):
        c = self.open()
        self.init(c)
        return c

    def test_fragments_reassembled(self):
        c = self.open()
        self.init(c)
        msg = json.dumps(req(5, "ping")).encode()
        c.frame(1, msg[:10], fin=False)
        c.frame(0, msg[10:20], fin=False)
        c.frame(0, msg[20:], fin=True)
        self.assertEqual(c.recv(), {"jsonrpc": "2.0", "id": 5, "result": {}})

    def test_unread_responses_are_bounded(self):
        c = self.open()
        self.init(c)
        def rss_kb():
            with open("/proc/%d/status" % self.srv.p.pid) as f:
                return int(next(l for l in f if l.startswith("VmRSS:")).split()[1])
        base = rss_kb()
        n = 2500  # ~20 KB of tools/list each: 50 MB queued if reading never paused
        c.s.sendall(b"".join(c.frame_bytes(1, json.dumps(req(i, "tools/list")).encode()) for i in range(n)))
        time.sleep(1.5)
        grown = rss_kb() - base
        got = [c.recv(30)["id"] for _ in range(n)]
        self.assertEqual(got, list(range(n)))
        # ASan's quarantine keeps freed buffers resident: no RSS bound there
        if "libasan" not in subprocess.run(["ldd", mcpraw.WARRANTD], capture_output=True, text=True).stdout:
            self.assertLess(grown, 24 * 1024)

    def test_ten_concurrent_runs(self):
        c = self.open()
        self.init(c)
        t0 = time.monotonic()
        for i in range(10):
            c.send(call(i, "run", {"contract": contract(self.fx.ws, ["sleep", "2"])}))
        c.send(call(100, "check", {"contract": contract(self.fx.ws, ["echo", "x"])}))
        got = {}
        while len(got) < 11:
            m = c.recv(30)
            got[m["id"]] = (time.monotonic() - t0, m)
        self.assertLess(got[100][0], 1.5)  # check answered during the runs
        for i in range(10):
            self.assertEqual(got[i][1]["result"]["structuredContent"]["status"], "success")
        self.assertLess(max(t for t, _ in got.values()), 8)

    def test_close_cancels_runs(self):
        c = self.open()
        self.init(c)
        c.send(call(1, "run", {"contract": contract(self.fx.ws, ["sleep", "30"])}))
        time.sleep(1)
        c.s.close()
        self.socks.remove(c)
        c2 = self.open()
        self.init(c2)
        self.assert_serving(c2)


class HTTPTest(unittest.TestCase):
    def setUp(self):
        self.fx = mcpraw.Fixture()
        self.srv = mcpraw.Listener(self.fx, "--max-message-bytes", "65536")
        self.h = mcpraw.HTTP(self.srv.port)

    def tearDown(self):
        self.assertEqual(self.srv.stop(), 0)
        self.assertNotIn(TOKEN, self.srv.stderr)
        self.assertNotIn("Sanitizer", self.srv.stderr)
        self.assertNotIn("runtime error", self.srv.stderr)
        self.fx.cleanup()

    def test_session_lifecycle(self):
        init = self.h.initialize()
        self.assertEqual(init["result"]["protocolVersion"], "2025-11-25")
        sid = self.h.session
        self.assertRegex(sid, r"^[\x21-\x7e]{16,}$")
        st, h, body = self.h.post(req(1, "ping"))
        self.assertEqual((st, body), (200, {"jsonrpc": "2.0", "id": 1, "result": {}}))
        self.assertTrue(h["content-type"].startswith("application/json"))
        # a second initialize on the session
        st, _, body = self.h.post(INIT)
        self.assertEqual(st, 400)
        self.assertEqual(body["error"]["code"], -32600)
        # recognised versions are accepted, unknown ones are 400
        self.assertEqual(self.h.post(req(2, "ping"), headers={"MCP-Protocol-Version": "2025-03-26"})[0], 200)
        self.assertEqual(self.h.post(req(3, "ping"), headers={"MCP-Protocol-Version": "1.0"})[0], 400)
        # the session belongs to its token's identity
        other = mcpraw.HTTP(self.srv.port, token=OTHER)
        other.session = sid
        self.assertEqual(other.post(req(4, "ping"))[0], 404)
        self.assertEqual(self.h.request("GET", {"Accept": "application/json"}), 406)
        self.assertEqual(self.h.request("PUT"), 405)
        self.assertEqual(self.h.request("DELETE"), 200)
        self.assertEqual(self.h.post(req(5, "ping"))[0], 404)

    def test_status_codes(self):
        self.h.initialize()
        cases = [
            ({"Accept": "application/json"}, 406),
            ({"Accept": "text/event-stream"}, 406),
            ({"Content-Type": "text/plain"}, 415),
            ({"Authorization": None}, 401),
            ({"Authorization": "Bearer nope-nope-nope-nope"}, 401),
            ({"Origin": "http://evil.example"}, 403),
            ({"Host": "evil.example:%d" % self.srv.port}, 403),
        ]
        for hdrs, want in cases:
            with self.subTest(h=hdrs):
                self.assertEqual(self.h.post(req(1, "ping"), headers=hdrs)[0], want)
        st, _, body = self.h.post_raw(b"{not json")
        self.assertEqual(st, 400)
        self.assertEqual(body["error"]["code"], -32700)
        st, _, body = self.h.post_raw(b'{"jsonrpc":"2.0","id":1,"method":"p\xff"}')
        self.assertEqual((st, body["error"]["code"]), (400, -32700))
        st, _, body = self.h.post_raw(b"[" + json.dumps(req(1, "ping")).encode() + b"]")
        self.assertEqual((st, body["error"]["code"]), (400, -32600))
        st, _, body = self.h.post_raw(b"[" * 100 + b"]" * 100)
        self.assertEqual((st, body["error"]["code"]), (400, -32600))
        st, _, body = self.h.post(call(4, "no_such_tool", {}))
        self.assertEqual((st, body["error"]["code"], body["id"]), (200, -32602, 4))
        st, _, body = self.h.post({"jsonrpc": "2.0", "id": None, "method": "ping"})
        self.assertEqual(st, 400)
        self.assertNotIn("id", body)
        st, _, _ = self.h.post_raw(b'{"x":"' + b"y" * 70000 + b'"}')
        self.assertEqual(st, 413)
        st, _, _ = self.h.post_raw(b"")
        self.assertEqual(st, 400)
        st, _, _ = self.h.post_raw(iter([json.dumps(req(5, "ping")).encode()]),
                                   headers={"Transfer-Encoding": "chunked"})
        self.assertEqual(st, 411)
        self.assertEqual(self.h.post(req(2, "ping"), session=False)[0], 400)  # no session id
        st, _, _ = self.h.post({"jsonrpc": "2.0", "method": "notifications/whatever"})
        self.assertEqual(st, 202)
        # accepted in either order, with parameters
        st, _, _ = self.h.post(req(3, "ping"), headers={"Accept": "text/event-stream;q=1, application/json"})
        self.assertEqual(st, 200)
        # still serving after all of that
        self.assertEqual(self.h.post(req(9, "ping"))[2], {"jsonrpc": "2.0", "id": 9, "result": {}})

    def test_dns_rebinding(self):
        st, _, _ = self.h.post(INIT, session=False, headers={"Host": "evil.example.com",
                                                            "Origin": "http://evil.example.com"})
        self.assertEqual(st, 403)
        st, _, _ = self.h.post(INIT, session=False, headers={"Origin": "http://127.0.0.1:%d" % self.srv.port})
        self.assertEqual(st, 200)

    def test_cors_for_allowed_origins(self):
        import http.client
        ok = "http://localhost:%d" % self.srv.port

        def options(origin):
            c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=10)
            h = {"Host": "127.0.0.1:%d" % self.srv.port, "Access-Control-Request-Method": "POST"}
            if origin:
                h["Origin"] = origin
            c.request("OPTIONS", "/mcp", headers=h)  # preflights carry no token
            r = c.getresponse()
            r.read()
            c.close()
            return r.status, {k.lower(): v for k, v in r.getheaders()}
        st, h = options(ok)
        self.assertEqual(st, 204)
        self.assertEqual(h["access-control-allow-origin"], ok)
        self.assertIn("Authorization", h["access-control-allow-headers"])
        self.assertIn("Mcp-Session-Id", h["access-control-allow-headers"])
        self.assertEqual(options("http://evil.example")[0], 403)
        self.assertEqual(options(None)[0], 400)
        st, h, _ = self.h.post(INIT, session=False, headers={"Origin": ok})
        self.assertEqual(st, 200)
        self.assertEqual(h["access-control-allow-origin"], ok)
        self.assertEqual(h["access-control-expose-headers"], "Mcp-Session-Id")
        st, h, _ = self.h.post(INIT, session=False)
        self.assertNotIn("access-control-allow-origin", h)

    def test_run_over_sse(self):
        self.h.initialize()
        ct = contract(self.fx.ws, ["seq", "1", "50"])
        st, h, msgs = self.h.post(call(1, "run", {"contract": ct}, token="p"))
        self.assertEqual(st, 200)
        self.assertTrue(h["content-type"].startswith("text/event-stream"))
        self.assertEqual(h.get("x-accel-buffering"), "no")
        self.assertEqual(msgs[-1]["id"], 1)
        self.assertEqual(msgs[-1]["result"]["structuredContent"]["status"], "success")
        self.assertTrue(any(m.get("method") == "notifications/progress" for m in msgs[:-1]))

    def test_elicitation_over_sse(self):
        import http.client
        self.h.initialize({"elicitation": {}})
        ct = contract(self.fx.ws, ["echo", "ok"], mode="human_required")
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
        conn.request("POST", "/mcp", body=json.dumps(call(1, "run", {"contract": ct})), headers=self.h.headers())
        r = conn.getresponse()
        self.assertTrue(r.getheader("content-type").startswith("text/event-stream"))
        first = r.readline()
        self.assertTrue(first.startswith(b"id: "), first)  # priming event first (SEP-1699)

        def next_message():
            while True:
                line = r.readline()
                if not line:
                    raise EOFError
                if line.startswith(b"data: ") and line[6:].strip():
                    return json.loads(line[6:])
        e = next_message()
        self.assertEqual(e["method"], "elicitation/create")
        st, _, _ = self.h.post({"jsonrpc": "2.0", "id": e["id"],
                                "result": {"action": "accept", "content": {"approve": True}}})
        self.assertEqual(st, 202)
        final = next_message()
        conn.close()
        self.assertEqual(final["id"], 1)
        self.assertEqual(final["result"]["structuredContent"]["status"], "success")

    def test_delete_during_run(self):
        import http.client
        self.h.initialize()
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
        conn.request("POST", "/mcp", body=json.dumps(call(1, "run", {"contract": contract(self.fx.ws, ["sleep", "20"])})),
                     headers=self.h.headers())
        r = conn.getresponse()
        self.assertTrue(r.readline().startswith(b"id: "))
        t0 = time.monotonic()
        self.assertEqual(self.h.request("DELETE"), 200)  # cancels the session's run
        conn.close()
        fresh = mcpraw.HTTP(self.srv.port)
        fresh.initialize()
        self.assertEqual(fresh.post(req(2, "ping"))[0], 200)
        self.assertLess(time.monotonic() - t0, 10)

    def test_sighup_rotates_tokens(self):
        fresh = "tok-rotated-0123456789abcdef"
        with open(self.fx.tokens, "w") as f:
            f.write("tester %s\n" % fresh)
        self.srv.p.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        self.assertEqual(mcpraw.HTTP(self.srv.port).post(INIT, session=False)[0], 401)
        self.assertEqual(mcpraw.HTTP(self.srv.port, token=fresh).post(INIT, session=False)[0], 200)
        os.chmod(self.fx.tokens, 0o644)  # refused: the rotated tokens stay
        self.srv.p.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        self.assertEqual(mcpraw.HTTP(self.srv.port, token=fresh).post(INIT, session=False)[0], 200)

    def test_receipts_are_per_agent(self):
        self.h.initialize()
        st, _, msgs = self.h.post(call(1, "run", {"contract": contract(self.fx.ws, ["true"])}))
        eid = msgs[-1]["result"]["structuredContent"]["execution_id"]
        other = mcpraw.HTTP(self.srv.port, token=OTHER)
        other.initialize()
        r = other.post(call(2, "get_receipt", {"execution_id": eid}))[2]["result"]
        self.assertTrue(r["isError"])
        r = self.h.post(call(3, "get_receipt", {"execution_id": eid}))[2]["result"]
        self.assertEqual(r["structuredContent"]["receipt"]["execution_id"], eid)

    def test_get_stream_carries_logging(self):
        import http.client
        self.h.initialize()
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
        conn.request("GET", "/mcp", headers=self.h.headers({"Accept": "text/event-stream"}))
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        self.assertTrue(r.getheader("content-type").startswith("text/event-stream"))
        self.assertEqual(self.h.request("GET", {"Accept": "text/event-stream"}), 409)  # one per session
        self.h.post(req(1, "logging/setLevel", {"level": "info"}))
        st, _, msgs = self.h.post(call(2, "run", {"contract": contract(self.fx.ws, ["true"])}))
        self.assertEqual(msgs[-1]["id"], 2)
        while True:
            line = r.readline()
            self.assertTrue(line, "stream ended early")
            if line.startswith(b"data: ") and line[6:].strip():
                m = json.loads(line[6:])
                break
        self.assertEqual(m["method"], "notifications/message")
        self.assertIn("run success", m["params"]["data"])
        self.assertEqual(self.h.request("DELETE"), 200)
        t0 = time.monotonic()
        while r.readline():  # DELETE ends the stream too
            self.assertLess(time.monotonic() - t0, 5)
        conn.close()

    def test_concurrent_posts(self):
        self.h.initialize()
        res = []

        def one(i):
            res.append(self.h.post(req(1000 + i, "tools/list"))[0])
        ts = [threading.Thread(target=one, args=(i,)) for i in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(res, [200, 200, 200])


class CommandLineTest(unittest.TestCase):
    def setUp(self):
        self.fx = mcpraw.Fixture()

    def tearDown(self):
        self.fx.cleanup()

    def run_d(self, *args):
        return subprocess.run([mcpraw.WARRANTD, "--state-dir", self.fx.state, *args], capture_output=True,
                              text=True, timeout=20, stdin=subprocess.DEVNULL)

    def test_refusals(self):
        r = self.run_d("--listen", "0.0.0.0:0", "--token-file", self.fx.tokens)
        self.assertEqual(r.returncode, 2)
        self.assertIn("without TLS", r.stderr)
        r = self.run_d("--listen", "0.0.0.0:0", "--auth", "none")
        self.assertEqual(r.returncode, 2)
        self.assertIn("non-loopback", r.stderr)
        r = self.run_d("--listen", "127.0.0.1:0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--token-file", r.stderr)
        os.chmod(self.fx.tokens, 0o644)
        r = self.run_d("--listen", "127.0.0.1:0", "--token-file", self.fx.tokens)
        self.assertEqual(r.returncode, 2)
        self.assertIn("group or world", r.stderr)
        r = self.run_d("--max-runs", "zero")
        self.assertEqual(r.returncode, 2)
        r = self.run_d("--bogus")
        self.assertEqual(r.returncode, 2)

    def test_tls_allows_a_non_loopback_bind(self):
        import ssl
        cert, key = os.path.join(self.fx.tmp, "c.pem"), os.path.join(self.fx.tmp, "k.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"],
                       check=True, capture_output=True)
        srv = mcpraw.Listener(self.fx, "--tls-cert", cert, "--tls-key", key, bind="0.0.0.0")
        try:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            h = mcpraw.HTTP(srv.port, tls=ctx)
            h.initialize()
            self.assertEqual(h.post(req(1, "ping"))[2], {"jsonrpc": "2.0", "id": 1, "result": {}})
            # plain HTTP on the TLS port gets nowhere
            with self.assertRaises(Exception):
                mcpraw.HTTP(srv.port).post(req(2, "ping"), session=False)
        finally:
            self.assertEqual(srv.stop(), 0)

    def test_undrained_stderr_never_blocks(self):
        # a client that pipes our stderr and never reads it: logging must not
        # stall the loop (debug logs one line per connection, > 64 KiB here)
        port = mcpraw.free_port()
        p = subprocess.Popen([mcpraw.WARRANTD, "--listen", "127.0.0.1:%d" % port, "--state-dir", self.fx.state,
                              "--token-file", self.fx.tokens, "--log-level", "debug"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.05)
            for i in range(900):
                c = mcpraw.WS(port, token=TOKEN)
                self.assertEqual(c.status, 101, i)
                c.close()
            p.terminate()
            self.assertEqual(p.wait(20), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()

    def test_config_file(self):
        cfg = os.path.join(self.fx.tmp, "warrantd.conf")
        with open(cfg, "w") as f:
            f.write("# test\nagent-id from-config\npolicy %s\n" % self.fx.policy)
        p = subprocess.run([mcpraw.WARRANTD, "--config", cfg, "--state-dir", self.fx.state],
                           input=(json.dumps(INIT) + "\n" + json.dumps(call(1, "describe_policy", {})) + "\n").encode(),
                           capture_output=True, timeout=20)
        lines = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual(lines[1]["result"]["structuredContent"]["agent_id"], "from-config")
        self.assertEqual(lines[1]["result"]["structuredContent"]["policy"]["name"], "server-test")


if __name__ == "__main__":
    unittest.main(verbosity=2)
