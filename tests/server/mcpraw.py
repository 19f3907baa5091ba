"""Raw MCP clients for the protocol tests: they send bytes exactly as given
(malformed ones too) over stdio, WebSocket (a minimal RFC 6455 client) and
Streamable HTTP, so the tests see the server's wire behaviour unfiltered."""
import base64
import http.client
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

BUILD = os.environ.get("WARRANT_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
WARRANTD = os.path.join(BUILD, "server", "warrantd")

INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "raw-test", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}

POLICY = """\
policy_schema_version: csc.policy.v0.1
name: server-test
allow_commands: [echo, cat, ls, sleep, "true", "false", seq, head]
deny_argv_prefixes: []
allowed_effect_types: [observe]
manual_approval_for_classified_effect_types: []
allowed_risk_classes: [low, medium]
max_timeout_sec: 60
network: deny
allow_secret_refs: false
require_write_paths_empty: true
allowed_cwd_prefixes: [{ws}]
allowed_read_prefixes: [{ws}]
allowed_write_prefixes: []
approval:
  max_lifetime_sec: 3600
  interactive_risk_classes: [low]
  interactive_effect_types: [observe]
  request_ttl_sec: 3600
  max_wait_sec: 5
"""


def contract(ws, argv, agent="tester", cid=None, timeout=20, mode="policy_only"):
    return {
        "version": "csc.v0.1",
        "contract_id": cid or "server-test-%d-%d" % (os.getpid(), time.monotonic_ns()),
        "intent": "server test",
        "actor": {"agent_id": agent, "session_id": "s-1", "initiating_user": "alice", "delegation_scope": "test"},
        "commands": [{
            "id": "cmd_1", "exec": {"argv": argv}, "cwd": ws, "read_paths": [ws], "write_paths": [],
            "network": "deny", "env_allow": [], "secret_refs": [], "timeout_sec": timeout,
            "proposed_effect_type": "observe",
        }],
        "risk_class": "low",
        "approval_mode": mode,
        "justification": "exercise the server",
    }


class Fixture:
    """A temp state dir, workspace and policy."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="warrant-server-")
        os.chmod(self.tmp, 0o755)
        self.ws = os.path.join(self.tmp, "ws")
        os.makedirs(self.ws)
        os.chmod(self.ws, 0o755)
        self.state = os.path.join(self.tmp, "state")
        self.policy = os.path.join(self.tmp, "policy.yaml")
        with open(self.policy, "w") as f:
            f.write(POLICY.format(ws=self.ws))
        self.tokens = os.path.join(self.tmp, "tokens")
        with open(self.tokens, "w") as f:
            # tester's client shows elicitations to carol (docs/approvals.md)
            f.write("# agent token\ntester tok-tester-0123456789abcdef elicitation:human=carol@example.com\n"
                    "other tok-other-0123456789abcdefgh\n")
        os.chmod(self.tokens, 0o600)

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


class StderrDrain:
    """Reads a child's stderr in the background (a full pipe would block the
    child's logging); .text() is everything so far."""

    def __init__(self, f):
        self.chunks = []
        self.t = threading.Thread(target=self.run, args=(f,), daemon=True)
        self.t.start()

    def run(self, f):
        for chunk in iter(lambda: os.read(f.fileno(), 65536), b""):
            self.chunks.append(chunk)

    def text(self, wait=False):
        if wait:
            self.t.join(10)
        return b"".join(self.chunks).decode(errors="replace")


class Stdio:
    """wrap: argv put before warrantd's (a tracer that runs it, say); warrantd: another build's."""

    def __init__(self, fx, *extra, agent="tester", wrap=(), warrantd=None):
        self.p = subprocess.Popen(
            [*wrap, warrantd or WARRANTD, "--stdio", "--state-dir", fx.state, "--policy", fx.policy, "--agent-id", agent, *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.err = StderrDrain(self.p.stderr)
        self.buf = b""

    def send_raw(self, data, frame=True):
        """One message; frame=False writes the bytes exactly as given."""
        self.p.stdin.write(data + (b"\n" if frame else b""))
        self.p.stdin.flush()

    def send(self, obj):
        self.send_raw(json.dumps(obj).encode())

    def recv(self, timeout=10):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from warrantd")
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                if not chunk:
                    raise EOFError("warrantd closed stdout")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def close(self, timeout=30):
        try:
            self.p.stdin.close()
        except BrokenPipeError:
            pass
        rc = self.p.wait(timeout)
        self.stderr = self.err.text(wait=True)
        self.p.stdout.close()
        self.p.stderr.close()
        return rc


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Listener:
    """warrantd --listen on a free loopback port."""

    def __init__(self, fx, *extra, auth=True, bind="127.0.0.1"):
        self.port = free_port()
        args = [WARRANTD, "--listen", "%s:%d" % (bind, self.port), "--state-dir", fx.state, "--policy", fx.policy]
        args += ["--token-file", fx.tokens] if auth else ["--auth", "none", "--agent-id", "tester"]
        self.p = subprocess.Popen(args + list(extra), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.err = StderrDrain(self.p.stderr)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.p.poll() is not None:
                    raise RuntimeError("warrantd exited: " + self.err.text(wait=True))
                time.sleep(0.05)
        raise TimeoutError("warrantd did not listen")

    def stop(self, timeout=30):
        self.p.terminate()
        rc = self.p.wait(timeout)
        self.stderr = self.err.text(wait=True)
        self.p.stdout.close()
        self.p.stderr.close()
        return rc


class WS:
    """Minimal WebSocket client (RFC 6455): text/binary frames, fragments."""

    def __init__(self, port, path="/ws", token=None, headers=None, protocol="mcp", query_token=None, tls=None):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls:  # an ssl.SSLContext for wss
            self.s = tls.wrap_socket(self.s)
        key = base64.b64encode(os.urandom(16)).decode()
        url = path + ("?access_token=" + query_token if query_token else "")
        h = {"Host": "127.0.0.1:%d" % port, "Upgrade": "websocket", "Connection": "Upgrade",
             "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
        if protocol:
            h["Sec-WebSocket-Protocol"] = protocol
        if token:
            h["Authorization"] = "Bearer " + token
        h.update(headers or {})
        req = "GET %s HTTP/1.1\r\n" % url + "".join("%s: %s\r\n" % kv for kv in h.items() if kv[1] is not None)
        self.s.sendall(req.encode() + b"\r\n")
        resp = b""
        while b"\r\n\r\n" not in resp:
            chunk = self.s.recv(4096)
            if not chunk:
                break
            resp += chunk
        head, _, self.buf = resp.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else 0

    @staticmethod
    def frame_bytes(opcode, payload, fin=True, masked=True):
        """One frame as bytes; masked=False is what a client must never send."""
        mask = os.urandom(4) if masked else b""
        b0 = (0x80 if fin else 0) | opcode
        m = 0x80 if masked else 0
        n = len(payload)
        if n < 126:
            hdr = struct.pack("!BB", b0, m | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, m | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, m | 127, n)
        if masked:
            payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        return hdr + mask + payload

    def frame(self, opcode, payload, fin=True, masked=True):
        self.s.sendall(self.frame_bytes(opcode, payload, fin, masked))

    def send_raw(self, data):
        self.frame(1, data)

    def send(self, obj):
        self.frame(1, json.dumps(obj).encode())

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self, timeout=10):
        self.s.settimeout(timeout)
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        return b0 & 0x0F, self._read(n)

    def recv(self, timeout=10):
        while True:
            op, data = self.recv_frame(timeout)
            if op == 1:
                return json.loads(data)
            if op == 8:
                raise EOFError("close frame %r" % data[:2])

    def close(self):
        try:
            self.frame(8, struct.pack("!H", 1000))
        except OSError:
            pass
        self.s.close()


class HTTP:
    """Streamable HTTP POSTs; returns (status, headers, body or SSE messages)."""

    def __init__(self, port, token="tok-tester-0123456789abcdef", tls=None):
        self.port = port
        self.token = token
        self.session = None
        self.tls = tls  # an ssl.SSLContext for https

    def connection(self):
        if self.tls:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=self.tls)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def post_raw(self, body, headers=None, session=True):
        h = {"Host": "127.0.0.1:%d" % self.port, "Accept": "application/json, text/event-stream",
             "Content-Type": "application/json"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if session and self.session:
            h["Mcp-Session-Id"] = self.session
            h["MCP-Protocol-Version"] = "2025-11-25"
        for k, v in (headers or {}).items():
            if v is None:
                h.pop(k, None)
            else:
                h[k] = v
        c = self.connection()
        c.request("POST", "/mcp", body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if hdrs.get("content-type", "").startswith("text/event-stream"):
            msgs = []
            for ev in data.decode().split("\n\n"):
                lines = [l[6:] for l in ev.split("\n") if l.startswith("data: ")]
                if lines and "".join(lines).strip():
                    msgs.append(json.loads("".join(lines)))
            return r.status, hdrs, msgs
        return r.status, hdrs, (json.loads(data) if data else None)

    def post(self, obj, **kw):
        return self.post_raw(json.dumps(obj).encode(), **kw)

    def request(self, method, headers=None):
        h = {"Host": "127.0.0.1:%d" % self.port}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if self.session:
            h["Mcp-Session-Id"] = self.session
        h.update(headers or {})
        c = self.connection()
        c.request(method, "/mcp", headers=h)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status

    def headers(self, extra=None):
        h = {"Host": "127.0.0.1:%d" % self.port, "Accept": "application/json, text/event-stream",
             "Content-Type": "application/json", "Authorization": "Bearer " + self.token,
             "Mcp-Session-Id": self.session, "MCP-Protocol-Version": "2025-11-25"}
        h.update(extra or {})
        return h

    def initialize(self, capabilities=None):
        m = dict(INIT)
        m["params"] = dict(INIT["params"], capabilities=capabilities or {})
        st, h, body = self.post(m, session=False)
        assert st == 200, (st, body)
        self.session = h["mcp-session-id"]
        st, _, _ = self.post(INITIALIZED)
        assert st == 202, st
        return body
