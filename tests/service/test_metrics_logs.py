#!/usr/bin/env python3
"""GET /metrics in the Prometheus text format, scraped with a real parser
(python3-prometheus-client), behind its own token kind; and JSON logs that
never carry a token or a secret value."""
import http.client
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "server"))
import mcpraw  # noqa: E402

BUILD = mcpraw.BUILD
WARRANT = os.path.join(BUILD, "clients", "warrant")
AGENT_TOKEN = "tok-tester-0123456789abcdef"
METRICS_TOKEN = "tok-metrics-5f1e2d3c4b5a69788796"
SECRET = "s3cr3t-value-that-must-never-be-logged-7788"

PARSE = r"""
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        key = s.name + json.dumps(dict(sorted(s.labels.items())), sort_keys=True)
        out[key] = s.value
    out["#type:" + fam.name] = fam.type
print(json.dumps(out))
"""


def parser_python():
    """The interpreter that has prometheus_client (Debian's, if ours lacks it)."""
    for py in (sys.executable, "/usr/bin/python3"):
        if subprocess.run([py, "-c", "import prometheus_client"], capture_output=True).returncode == 0:
            return py
    raise RuntimeError("python3-prometheus-client is missing (scripts/deps.sh --test installs it)")


def parse(text):
    r = subprocess.run([parser_python(), "-c", PARSE], input=text, capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("the Prometheus parser refused /metrics:\n" + r.stderr)
    return json.loads(r.stdout)


def val(m, name, **labels):
    return m.get(name + json.dumps(dict(sorted(labels.items())), sort_keys=True), 0.0)


class MetricsAndLogs(unittest.TestCase):
    def setUp(self):
        self.fx = mcpraw.Fixture()
        with open(self.fx.tokens, "a") as f:
            f.write("metrics:prometheus %s\n" % METRICS_TOKEN)
        self.srv = mcpraw.Listener(self.fx, "--log-format", "json", "--log-level", "debug")

    def tearDown(self):
        if self.srv.p.poll() is None:
            self.srv.stop()
        self.fx.cleanup()

    def get(self, path, token=None):
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=10)
        h = {"Authorization": "Bearer " + token} if token else {}
        c.request("GET", path, headers=h)
        r = c.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode()

    def scrape(self):
        st, ctype, body = self.get("/metrics", METRICS_TOKEN)
        self.assertEqual(st, 200, body)
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        return parse(body)

    def session(self):
        h = mcpraw.HTTP(self.srv.port, token=AGENT_TOKEN)
        h.initialize()
        h.calls = 0
        return h

    def call(self, h, tool, args):
        h.calls += 1
        st, _, body = h.post({"jsonrpc": "2.0", "id": 100 + h.calls, "method": "tools/call",
                              "params": {"name": tool, "arguments": args}})
        self.assertEqual(st, 200, body)
        msgs = body if isinstance(body, list) else [body]
        final = [m for m in msgs if m.get("id") == 100 + h.calls]
        self.assertEqual(len(final), 1, msgs)
        return final[0]["result"]["structuredContent"]

    def test_bad_option_values_are_refused(self):
        for args, says in ((["--log-format", "xml"], "--log-format: expected text or json"),
                           (["--log-format", ""], "--log-format: expected text or json"),
                           (["--metrics-auth", "open"], "--metrics-auth: expected token or loopback"),
                           (["--launchers", "-1"], "--launchers: expected an integer in [0, 64]"),
                           (["--launchers", "65"], "--launchers: expected an integer in [0, 64]"),
                           (["--launchers", "2x"], "--launchers: expected an integer in [0, 64]"),
                           (["--launchers", "99999999999999999999"], "--launchers: expected an integer in [0, 64]")):
            r = subprocess.run([mcpraw.WARRANTD, "--stdio", "--state-dir", self.fx.state] + args,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(says, r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    def test_metrics_need_their_own_token(self):
        self.assertEqual(self.get("/metrics")[0], 401)
        self.assertEqual(self.get("/metrics", AGENT_TOKEN)[0], 403)
        self.assertEqual(self.get("/metrics", "tok-wrong")[0], 401)
        # a metrics token is not an agent token
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=10)
        c.request("POST", "/mcp", json.dumps(mcpraw.INIT),
                  {"Authorization": "Bearer " + METRICS_TOKEN, "Content-Type": "application/json",
                   "Accept": "application/json, text/event-stream"})
        self.assertEqual(c.getresponse().status, 403)

    def test_values_move(self):
        before = self.scrape()
        self.assertEqual(before["#type:warrant_decisions"], "counter")
        self.assertEqual(before["#type:warrant_check_duration_seconds"], "histogram")
        h = self.session()
        ok = mcpraw.contract(self.fx.ws, ["true"])
        self.call(h, "check", {"contract": ok})
        self.call(h, "check", {"contract": mcpraw.contract(self.fx.ws, ["rm", "-rf", "/"])})
        self.call(h, "run", {"contract": mcpraw.contract(self.fx.ws, ["true"])})
        self.call(h, "run", {"contract": mcpraw.contract(self.fx.ws, ["false"])})
        self.get("/mcp", "tok-not-a-token")  # a refused request
        after = self.scrape()

        def moved(name, **labels):
            return val(after, name, **labels) - val(before, name, **labels)

        self.assertGreaterEqual(moved("warrant_decisions_total", outcome="allow", reason="ALLOW"), 3)
        self.assertGreaterEqual(moved("warrant_decisions_total", outcome="deny", reason="COMMAND_NOT_ALLOWED"), 1)
        self.assertEqual(moved("warrant_runs_total", status="success"), 1)
        self.assertEqual(moved("warrant_runs_total", status="failed"), 1)
        self.assertEqual(moved("warrant_receipts_sealed_total"), 2)
        self.assertGreaterEqual(moved("warrant_check_duration_seconds_count"), 2)
        self.assertEqual(moved("warrant_run_duration_seconds_count"), 2)
        self.assertEqual(moved("warrant_sandbox_start_seconds_count"), 2)  # both ran; the denied check did not
        self.assertGreaterEqual(sum(v for k, v in after.items() if k.startswith("warrant_refused_total"))
                                - sum(v for k, v in before.items() if k.startswith("warrant_refused_total")), 1)
        self.assertGreaterEqual(val(after, "warrant_sessions", transport="http"), 1)
        self.assertEqual(val(after, "warrant_runs_running"), 0)

    def secret_policy(self, pub):
        with open(self.fx.policy, "a") as f:
            f.write("approvers:\n  - identity: alice@example.com\n    public_key: |\n")
            with open(pub) as p:
                for line in p.read().splitlines():
                    f.write("      " + line + "\n")
        with open(self.fx.policy) as f:
            text = f.read()
        text = text.replace("allow_secret_refs: false", "allow_secret_refs: true")
        text = text.replace("allow_commands: [", "allow_commands: [printenv, ")
        with open(self.fx.policy, "w") as f:
            f.write(text)

    def test_json_logs_never_hold_tokens_or_secrets(self):
        # A secret released to an approved run: the approver signs with the CLI.
        self.srv.stop()
        key = os.path.join(self.fx.tmp, "alice")
        subprocess.run([WARRANT, "keygen", "--out", key], check=True, capture_output=True)
        self.secret_policy(key + ".pub")
        os.makedirs(os.path.join(self.fx.state, "secrets"), mode=0o700, exist_ok=True)
        with open(os.open(os.path.join(self.fx.state, "secrets", "API_KEY"), os.O_WRONLY | os.O_CREAT, 0o600),
                  "w") as f:
            f.write(SECRET)
        self.srv = mcpraw.Listener(self.fx, "--log-format", "json", "--log-level", "debug")
        h = self.session()
        c = mcpraw.contract(self.fx.ws, ["printenv", "API_KEY"], mode="human_required")
        c["commands"][0]["secret_refs"] = ["API_KEY"]
        first = self.call(h, "run", {"contract": c})
        self.assertEqual(first["receipt"]["status"], "blocked")
        req = subprocess.run([WARRANT, "approvals", "list", "--json", "--state-dir", self.fx.state],
                             check=True, capture_output=True, text=True)
        request_id = json.loads(req.stdout)[0]["request_id"]
        signed = subprocess.run([WARRANT, "approvals", "approve", request_id, "--key", key + ".key", "--identity",
                                 "alice@example.com", "--state-dir", self.fx.state],
                                check=True, capture_output=True, text=True)
        second = self.call(h, "run", {"contract": c})
        self.assertEqual(second["receipt"]["status"], "success", second)
        self.assertNotIn(SECRET, second["stdout"])  # redacted
        # An artifact altered after signing is refused, and counted so.
        forged = json.loads(signed.stdout)
        forged["reason"] = "altered after signing"
        h.calls += 1
        h.post({"jsonrpc": "2.0", "id": 100 + h.calls, "method": "tools/call",
                "params": {"name": "submit_approval", "arguments": {"artifact": forged}}})
        self.call(h, "get_checkpoint", {})
        m = self.scrape()
        self.assertGreaterEqual(val(m, "warrant_approvals_total", outcome="refused"), 1)
        self.assertGreaterEqual(val(m, "warrant_checkpoint_size"), 2)
        self.get("/mcp", AGENT_TOKEN + "x")  # a near-miss token is refused and logged
        self.get("/metrics", METRICS_TOKEN)
        self.srv.stop()
        lines = [l for l in self.srv.stderr.splitlines() if l.strip()]
        self.assertTrue(lines)
        sealed = []
        for line in lines:
            rec = json.loads(line)  # every line is one JSON object
            for k in ("time", "level", "component", "message"):
                self.assertIn(k, rec, line)
            if rec.get("event") == "run.sealed":
                sealed.append(rec)
        self.assertEqual([r["outcome"] for r in sealed], ["blocked", "success"])
        self.assertEqual(sealed[1]["identity"], "tester")
        self.assertTrue(sealed[1]["execution_id"].startswith("exe_"))
        for secret in (AGENT_TOKEN, METRICS_TOKEN, "tok-other-0123456789abcdefgh", SECRET):
            self.assertNotIn(secret, self.srv.stderr)

if __name__ == "__main__":
    unittest.main()
