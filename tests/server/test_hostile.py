"""warrantd against hostile clients (issue 13): raw sockets that do what
well-behaved SDKs never do, pushed past every bound. Each test states the
finding it reproduces; it failed on the code before the fix."""
import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from mcpraw import INIT, HTTP, WS, Fixture, Listener, contract  # noqa: E402

TOKEN = "tok-tester-0123456789abcdef"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU time the process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def raw_request(port, method, body=b"", token=TOKEN, session=None, path="/mcp", extra=None):
    """One HTTP/1.1 request as bytes (keep-alive: nothing asks to close)."""
    h = {"Host": "127.0.0.1:%d" % port, "Accept": "application/json, text/event-stream"}
    if token:
        h["Authorization"] = "Bearer " + token
    if session:
        h["Mcp-Session-Id"] = session
        h["MCP-Protocol-Version"] = "2025-11-25"
    if method == "POST":
        h["Content-Type"] = "application/json"
        h["Content-Length"] = str(len(body))
    if method == "OPTIONS":
        h["Origin"] = "http://localhost:%d" % port
        h["Access-Control-Request-Method"] = "POST"
    h.update(extra or {})
    head = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in h.items())
    return head.encode() + b"\r\n" + body


def read_all(s, timeout):
    """Everything the server sends until it closes or goes quiet; and
    whether it closed."""
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except socket.timeout:
        return data, False
    except ConnectionResetError:
        return data, True


def rpc(id_, method, params=None):
    m = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        m["params"] = params
    return json.dumps(m).encode()


class HostileHTTP(unittest.TestCase):
    def setUp(self):
        self.fx = Fixture()
        self.srv = Listener(self.fx)
        self.http = HTTP(self.srv.port)
        st, hdrs, _ = self.http.post(INIT)
        self.assertEqual(st, 200)
        self.http.session = hdrs["mcp-session-id"]

    def tearDown(self):
        if self.srv.p.poll() is None:
            self.srv.p.kill()
            self.srv.p.wait()
        self.fx.cleanup()

    def assert_alive(self, what):
        """The loop is idle (no spin) and serves another client at once."""
        before = cpu_seconds(self.srv.p.pid)
        time.sleep(1.0)
        used = cpu_seconds(self.srv.p.pid) - before
        self.assertLess(used, 0.6, "%s: the server burnt %.2f s of CPU in 1 s" % (what, used))
        other = HTTP(self.srv.port)
        t0 = time.monotonic()
        st, _, body = other.post({"jsonrpc": "2.0", "id": 9, "method": "ping"},
                                 headers={"Mcp-Session-Id": self.http.session,
                                          "MCP-Protocol-Version": "2025-11-25"})
        self.assertEqual((st, body["result"]), (200, {}), what)
        self.assertLess(time.monotonic() - t0, 2, what)

    def test_pipelined_requests_of_every_kind(self):
        """Finding: two HTTP/1.1 requests pipelined on one keep-alive
        connection put the loop in a 100 % CPU spin inside libwebsockets;
        nobody was served again and SIGTERM was ignored."""
        port, sid = self.srv.port, self.http.session
        run = rpc(5, "tools/call", {"name": "run", "arguments": {"contract": contract(self.fx.ws, ["sleep", "2"])}})
        firsts = {
            "initialize": raw_request(port, "POST", json.dumps(INIT).encode()),
            "ping": raw_request(port, "POST", rpc(1, "ping"), session=sid),
            "run (SSE)": raw_request(port, "POST", run, session=sid),
            "GET stream": raw_request(port, "GET", session=sid, extra={"Accept": "text/event-stream"}),
            "DELETE unknown": raw_request(port, "DELETE", session="mcp-nope"),
            "OPTIONS": raw_request(port, "OPTIONS", token=None),
            "refused 401": raw_request(port, "POST", rpc(1, "ping"), token="bad-token-0123456789"),
            "404": raw_request(port, "POST", rpc(1, "ping"), path="/nope"),
        }
        seconds = [raw_request(port, "POST", rpc(2, "ping"), session=sid),
                   raw_request(port, "GET", session=sid, extra={"Accept": "text/event-stream"}),
                   raw_request(port, "POST", json.dumps(INIT).encode())]
        for name, first in firsts.items():
            with self.subTest(first=name):
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(first + b"".join(seconds))
                got, closed = read_all(s, 0.5 if name == "GET stream" else 3)
                if name == "run (SSE)":
                    # RFC 9112 9.3.2: no pipelining behind a non-idempotent
                    # request; rather than stream with bytes stuck behind
                    # it, the connection ends (the run still seals a receipt)
                    self.assertTrue(closed, "a pipelined stream stays open")
                else:
                    # the first request is answered (answer one, then close)
                    self.assertTrue(got.startswith(b"HTTP/1.1 "), "%s: %r" % (name, got[:80]))
                self.assert_alive(name)
                s.close()
        t0 = time.monotonic()
        self.srv.p.terminate()
        self.srv.p.wait(10)
        self.assertLess(time.monotonic() - t0, 10)


if __name__ == "__main__":
    unittest.main()
