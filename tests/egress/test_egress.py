"""Egress attacks against real sandboxes (issue 12), only on this machine.

Test servers listen on 127.0.0.1 (and a host abstract unix socket); the
policy lists them as literal 127.0.0.1:PORT. Each scenario runs as root and
as an unprivileged user (nobody), through tests/egress/egress_driver.

    test_egress.py EGRESS_DRIVER [WARRANT_CLI]

With WARRANT_CLI, `warrant run` under an allowlisted policy also shows the
proxy's record in the signed receipt, and a redirect to an unlisted port
refused there.
"""
import functools
import hashlib
import http.server
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

DRIVER = sys.argv[1]
WARRANT = sys.argv[2] if len(sys.argv) > 2 else None
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
BODY = b"egress-test-body\n"
BIG_MIB = 16
CC_SYSCTL = "/proc/sys/net/ipv4/tcp_congestion_control"
results = {"passed": 0, "failed": 0}


def check(name, cond, detail=""):
    results["passed" if cond else "failed"] += 1
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else "  -- " + str(detail)[:1500]), flush=True)


def skip(why):
    print("SKIP: " + why)
    sys.exit(77)


class Quiet(http.server.SimpleHTTPRequestHandler):
    redirect_to = None  # /redirect answers 302 to this URL

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path == "/redirect" and self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.end_headers()
            return
        super().do_GET()


class Server6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


def serve(root, v6=False):
    """An HTTP server on 127.0.0.1 (or ::1) at an ephemeral port serving root."""
    cls, addr = (Server6, "::1") if v6 else (http.server.ThreadingHTTPServer, "127.0.0.1")
    srv = cls((addr, 0), functools.partial(Quiet, directory=root))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def run(mode, argv, allow=(), hosts=None, as_nobody=False, timeout=None):
    cmd = ([] if not as_nobody else NOBODY) + [DRIVER, mode]
    if timeout:
        cmd += ["--timeout", str(timeout)]
    for a in allow:
        cmd += ["--allow", a]
    if hosts:
        cmd += ["--hosts", hosts]
    p = subprocess.run(cmd + ["--"] + argv, capture_output=True, text=True, errors="replace", timeout=120)
    if p.returncode != 0:
        return {"status": "driver-error", "error": "exit %d: %s" % (p.returncode, p.stderr), "stdout": "",
                "stderr": p.stderr,
                "network_used": None, "network": None, "plan": {}}
    return json.loads(p.stdout)


def hosts_of(r):
    return {(h["host"], h["port"]): h for h in ((r.get("network") or {}).get("hosts") or [])}


def refused_of(r):
    return {(h["host"], h["port"]): h["reason"] for h in ((r.get("network") or {}).get("refused") or [])}


PY_CONNECT = """
import socket, sys
kind, where = sys.argv[1], sys.argv[2]
try:
    # creating the socket is inside: under network: deny seccomp refuses AF_INET itself
    if kind == "abstract":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = "\\0" + where
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        host, port = where.rsplit(":", 1)
        target = (host, int(port))
    s.settimeout(3)
    s.connect(target)
    print("CONNECTED")
except OSError as e:
    print("FAILED", e.errno)
"""


POLICY = """\
policy_schema_version: csc.policy.v0.1
name: egress-e2e
allow_commands: [curl]
allowed_effect_types: [observe, fetch_external]
allowed_risk_classes: [low]
max_timeout_sec: 30
network: allowlisted
allow_secret_refs: false
allowed_cwd_prefixes: [%s]
allowed_read_prefixes: [%s]
allowed_egress_hosts: ['%s']
"""


def warrant_run(tmp, lit, url, redirect, other):
    """`warrant run`: the signed receipt carries the proxy's record."""
    ws = os.path.join(tmp, "ws")
    os.mkdir(ws)
    os.chmod(ws, 0o755)
    with open(os.path.join(tmp, "policy.yaml"), "w") as f:
        f.write(POLICY % (ws, ws, lit))

    def contract(name, argv):
        path = os.path.join(tmp, name + ".json")
        with open(path, "w") as f:
            json.dump({"version": "csc.v0.1", "contract_id": name, "intent": name,
                       "actor": {"agent_id": "tester", "session_id": "s-1", "initiating_user": "bob",
                                 "delegation_scope": "test"},
                       "commands": [{"id": "fetch", "exec": {"argv": argv}, "cwd": ws, "read_paths": [ws],
                                     "write_paths": [], "network": "allowlisted", "env_allow": [],
                                     "secret_refs": [], "timeout_sec": 20, "proposed_effect_type": "fetch_external"}],
                       "risk_class": "low", "approval_mode": "policy_only", "justification": name}, f)
        p = subprocess.run([WARRANT, "run", "--policy", os.path.join(tmp, "policy.yaml"), "--state-dir",
                            os.path.join(tmp, "state"), path], capture_output=True, text=True, timeout=120)
        try:
            return json.loads(p.stdout)
        except ValueError:
            return {"stdout": p.stdout, "stderr": p.stderr}

    r = contract("e2e-fetch", ["curl", "-sS", "-f", "-m", "10", url])
    eg = r.get("network_egress") or {}
    check("warrant run: the signed receipt lists the host, port and bytes; network_used",
          r.get("status") == "success" and r.get("effect_summary", {}).get("network_used") is True
          and [(h["host"], h["port"]) for h in eg.get("hosts", [])] == [("127.0.0.1", int(lit.split(":")[1]))]
          and eg["hosts"][0]["bytes_received"] > 0 and "signature" in r, r)
    # curl refuses each body as too large and closes with the body unread:
    # a reset to the proxy in the middle of its writes, RESETS times.
    r = contract("e2e-reset", ["curl", "-sS", "--max-filesize", "1000"] + ["http://%s/big" % lit] * RESETS)
    eg = r.get("network_egress") or {}
    check("warrant run: downloads the command resets mid-way still end in a signed receipt",
          "signature" in r and r.get("exit_code") == 63 and eg.get("hosts")
          and eg["hosts"][0]["connections"] == RESETS, r)
    r = contract("e2e-redirect", ["curl", "-sS", "-f", "-L", "-m", "10", redirect])
    eg = r.get("network_egress") or {}
    check("warrant run: a redirect to an unlisted port is refused and recorded",
          r.get("status") == "failed" and any(x["port"] == other for x in eg.get("refused", [])), r)


# A SOCKS5 request for a 255-byte name (the protocol's maximum), then a
# normal fetch on a second connection: the proxy must refuse the first
# cleanly and still serve the second.
PY_SOCKS_LONG = """
import socket, sys, urllib.request
s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
s.sendall(bytes([5, 1, 0]))
assert s.recv(2) == bytes([5, 0])
name = b"a" * 255
s.sendall(bytes([5, 1, 0, 3, 255]) + name + bytes([0, 80]))
reply = s.recv(10)
print("REPLY", reply[1] if len(reply) > 1 else "none")
s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
s.sendall(bytes([5, 1, 0]))
s.recv(2)
name = bytes([0xff, 0xfe, 0x01, 0x22, 0x78, 0x5c])  # binary, a quote, a backslash
s.sendall(bytes([5, 1, 0, 3, len(name)]) + name + bytes([0, 80]))
reply = s.recv(10)
print("REPLY", reply[1] if len(reply) > 1 else "none")
print("BODY", urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())
"""


# 80 idle connections to the proxy: past its bound of 64 concurrent ones,
# the rest are closed at once (EOF) and recorded as refused.
PY_FLOOD = """
import socket, time
held = [socket.create_connection(("127.0.0.1", 3128), timeout=5) for i in range(80)]
time.sleep(1)
closed = 0
for s in held:
    s.setblocking(False)
    try:
        closed += s.recv(1) == b""
    except BlockingIOError:
        pass
print("CLOSED", closed)
"""


# SOCKS5 to the IPv4-mapped IPv6 form of a listed 127.0.0.1:PORT: a
# different literal, so it is not allowed by the entry.
PY_SOCKS_MAPPED = """
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", 3128), timeout=5)
s.sendall(bytes([5, 1, 0]))
s.recv(2)
s.sendall(bytes([5, 1, 0, 4]) + socket.inet_pton(socket.AF_INET6, "::ffff:127.0.0.1") + struct.pack(">H", int(sys.argv[1])))
print("REPLY", s.recv(10)[1])
"""


# Through CONNECT, the command uploads 8 MiB to each of UPLOADS servers that
# read UPLOAD_READ bytes and then reset the connection: the receipt must
# count at least what each server received (exfiltration is never
# under-reported when a write fails half-way).
UPLOADS = 5
UPLOAD_READ = 256 * 1024
PY_UPLOAD = """
import socket, sys
for target in sys.argv[1:]:
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(b"CONNECT %s HTTP/1.1\\r\\n\\r\\n" % target.encode())
    assert s.recv(4096).startswith(b"HTTP/1.1 200")
    try:
        s.sendall(b"x" * (8 << 20))
        s.recv(1)
    except OSError:
        pass
print("SENT")
"""


# The command resets its own connections in the middle of downloads: the
# proxy's next write to it fails (EPIPE once the other direction has taken
# the reset), which must end that connection only, never the process that
# runs the proxy (SIGPIPE) and with it the run's receipt.
RESETS = 20
PY_RESET = """
import socket, struct, sys
for i in range(%d):
    s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    s.sendall(b"GET http://%%s/big HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" %% sys.argv[1].encode())
    s.recv(65536)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
print("RESET")
""" % RESETS


def reset_after(n):
    """A TCP server on 127.0.0.1 with a small receive window: it reads n
    bytes of each connection, then resets it. Returns (socket, counts)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    counts = []

    def serve_forever():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            got = 0
            while got < n:
                b = c.recv(min(65536, n - got))
                if not b:
                    break
                got += len(b)
            counts.append(got)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()

    threading.Thread(target=serve_forever, daemon=True).start()
    return srv, counts


def main():
    if not shutil.which("bwrap") or not shutil.which("curl"):
        skip("bwrap and curl are needed")
    if os.geteuid() != 0:
        skip("runs as root (it also runs every scenario as nobody)")
    tmp = tempfile.mkdtemp(prefix="wr-egress-")
    os.chmod(tmp, 0o755)
    www = os.path.join(tmp, "www")
    os.mkdir(www)
    with open(os.path.join(www, "index.html"), "wb") as f:
        f.write(BODY)
    big = os.urandom(BIG_MIB << 20)
    with open(os.path.join(www, "big"), "wb") as f:
        f.write(big)
    big_sha = hashlib.sha256(big).hexdigest()
    # a repository git can clone over plain ("dumb") HTTP
    src = os.path.join(tmp, "src")
    subprocess.run(["git", "init", "-q", src], check=True)
    with open(os.path.join(src, "README"), "w") as f:
        f.write("cloned through the egress proxy\n")
    git_env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                   GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", "-C", src, "add", "README"], check=True, env=git_env)
    subprocess.run(["git", "-C", src, "commit", "-qm", "one"], check=True, env=git_env)
    subprocess.run(["git", "clone", "-q", "--bare", src, os.path.join(www, "repo.git")], check=True)
    subprocess.run(["git", "-C", os.path.join(www, "repo.git"), "update-server-info"], check=True)
    for d, _, files in os.walk(tmp):
        os.chmod(d, 0o755)
        for fn in files:
            os.chmod(os.path.join(d, fn), 0o644)

    allowed_srv, other_srv = serve(www), serve(www)
    try:
        v6_srv = serve(www, v6=True)
    except OSError:
        v6_srv = None
    port, other = allowed_srv.server_address[1], other_srv.server_address[1]
    lit = "127.0.0.1:%d" % port
    url = "http://%s/index.html" % lit
    big_url = "http://%s/big" % lit
    abstract_name = "warrant-egress-test-%d" % os.getpid()
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind("\0" + abstract_name)
    abstract.listen(8)
    # a listener whose accept queue is full: further SYNs are dropped
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(0)
    stuck_lit = "127.0.0.1:%d" % stuck.getsockname()[1]
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(stuck.getsockname())
        fillers.append(c)
    hosts = os.path.join(tmp, "hosts")
    with open(hosts, "w") as f:
        f.write("# test resolver\n127.0.0.1 svc.egress.test rebind.egress.test a.wild.egress.test\n"
                "127.0.0.2 multi.egress.test\n127.0.0.1 multi.egress.test\n")
    os.chmod(hosts, 0o644)

    for who, nobody in (("root", False), ("nobody", True)):
        A = functools.partial(run, "allowlisted", as_nobody=nobody)
        t = "[%s] " % who

        r = A(["curl", "-sS", "-f", "-m", "10", url], allow=[lit])
        h = hosts_of(r).get(("127.0.0.1", port))
        check(t + "allowlisted: curl reaches a listed 127.0.0.1:PORT through the proxy",
              r["status"] == "success" and r["stdout"].encode() == BODY, r)
        check(t + "allowlisted: the record has the host, port and bytes; network_used",
              h and h["bytes_received"] > len(BODY) and h["bytes_sent"] > 0 and r["network_used"] is True, r)
        env = {op["dest"]: op.get("value") for op in r["plan"].get("ops", []) if op["op"] == "setenv"}
        check(t + "allowlisted: proxy variables set, upper and lower case",
              all(env.get(k) for k in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                                        "all_proxy", "NO_PROXY", "no_proxy")), env)

        # A bulk download: every byte relayed and counted exactly (curl's
        # header and body sizes), over the namespace's congestion control
        # (reno: no pacing on a loopback-only leg, see docs/egress.md).
        r = A(["sh", "-c", 'cat "$1" && curl -sS -f -m 30 -o /tmp/big -w "%{size_header} %{size_download}\\n" "$0" '
               '&& sha256sum /tmp/big', big_url, CC_SYSCTL], allow=[lit])
        out = r["stdout"].split()
        h = hosts_of(r).get(("127.0.0.1", port))
        if os.access(CC_SYSCTL, os.W_OK):
            check(t + "allowlisted: the namespace's TCP runs reno, not the host's default",
                  r["status"] == "success" and out[:1] == ["reno"], r)
        else:
            print("note: %s is read-only here, so the proxy's namespace keeps the host's default" % CC_SYSCTL)
        check(t + "allowlisted: a %d MiB download arrives intact, its bytes counted exactly" % BIG_MIB,
              r["status"] == "success" and out[2:4] == [str(BIG_MIB << 20), big_sha]
              and h and h["bytes_received"] == int(out[1]) + int(out[2]), r)

        resets = [reset_after(UPLOAD_READ) for _ in range(UPLOADS)]
        lits = ["127.0.0.1:%d" % srv.getsockname()[1] for srv, _ in resets]
        r = A(["python3", "-c", PY_UPLOAD] + lits, allow=lits)
        sent = [hosts_of(r).get(("127.0.0.1", srv.getsockname()[1]), {}).get("bytes_sent", -1) for srv, _ in resets]
        got = [counts[0] if counts else None for _, counts in resets]
        check(t + "allowlisted: uploads cut off by a reset count at least what each server received",
              r["status"] == "success" and r["stdout"].strip() == "SENT" and got == [UPLOAD_READ] * UPLOADS
              and all(s >= g for s, g in zip(sent, got)), ("recorded", sent, "received", got, r))
        for srv, _ in resets:
            srv.close()
        r = A(["python3", "-c", PY_RESET, lit], allow=[lit])
        h = hosts_of(r).get(("127.0.0.1", port))
        check(t + "allowlisted: %d downloads reset by the command mid-way: the run survives, each recorded" % RESETS,
              r["status"] == "success" and r["stdout"].strip() == "RESET" and h and h["connections"] == RESETS, r)

        r = A(["curl", "-sS", "-f", "-m", "10", "http://127.0.0.1:%d/index.html" % other], allow=[lit])
        check(t + "allowlisted: another local port is refused (403) and recorded",
              r["status"] == "failed" and "not in allowed_egress_hosts" in refused_of(r).get(("127.0.0.1", other), "")
              and r["network_used"] is False, r)

        r = A(["curl", "-sS", "-m", "5", "--noproxy", "*", url], allow=[lit])
        check(t + "allowlisted: a direct connection bypassing the proxy fails",
              r["status"] == "failed" and r["exit_code"] == 7 and not hosts_of(r), r)
        r = A(["python3", "-c", PY_CONNECT, "tcp", "10.0.2.2:%d" % port], allow=[lit])
        check(t + "allowlisted: no route anywhere but the proxy",
              r["stdout"].startswith("FAILED"), r)
        r = A(["python3", "-c", PY_CONNECT, "abstract", abstract_name], allow=[lit])
        check(t + "allowlisted: a host abstract unix socket is unreachable", r["stdout"].startswith("FAILED"), r)

        r = A(["echo", 'url = "%s"' % url, "--pipe", "curl", "-sS", "-f", "-m", "10", "-K", "-", "--pipe", "tr",
               "a-z", "A-Z"], allow=[lit])
        check(t + "allowlisted: a later pipeline segment reaches the proxy of its command",
              r["status"] == "success" and r["stdout"].encode() == BODY.upper(), r)
        r = A(["curl", "-sS", "-f", "-m", "10", "--proxytunnel", url], allow=[lit])
        check(t + "allowlisted: HTTP CONNECT tunnel", r["status"] == "success" and r["stdout"].encode() == BODY, r)
        r = A(["curl", "-sS", "-f", "-m", "10", "-x", "socks5h://127.0.0.1:3128", url], allow=[lit])
        check(t + "allowlisted: SOCKS5", r["status"] == "success" and r["stdout"].encode() == BODY, r)
        r = A(["curl", "-sS", "-f", "-m", "10", "-x", "socks5h://127.0.0.1:3128",
               "http://127.0.0.1:%d/" % other], allow=[lit])
        check(t + "allowlisted: SOCKS5 to an unlisted port is refused",
              r["status"] == "failed" and ("127.0.0.1", other) in refused_of(r), r)

        r = A(["python3", "-c", PY_SOCKS_LONG, url], allow=[lit])
        check(t + "allowlisted: a 255-byte or binary SOCKS5 name is refused and the proxy keeps serving",
              r["stdout"].split() == ["REPLY", "2", "REPLY", "2", "BODY", BODY.decode().strip()], r)
        check(t + "allowlisted: a refused name is recorded in printable ASCII",
              ('???"x\\', 80) in refused_of(r), r)
        # A connection that cannot complete (the listener's queue is full, so
        # SYNs are dropped) must not hold the end of the command: the proxy
        # abandons it when the command is killed at its timeout.
        t0 = time.monotonic()
        r = A(["curl", "-sS", "-m", "60", "http://%s/" % stuck_lit], allow=[stuck_lit], timeout=2)
        took = time.monotonic() - t0
        check(t + "allowlisted: a hanging upstream connect ends with the command (timeout 2 s, run %.1f s)" % took,
              r["status"] == "failed" and "timeout" in (r["error"] or "") and took < 7, r)
        r = A(["python3", "-c", PY_FLOOD], allow=[lit])
        n = (r.get("network") or {}).get("refused_total", 0)
        check(t + "allowlisted: connections past the bound of 64 are closed and counted",
              r["stdout"].split() == ["CLOSED", "16"] and n == 16
              and "too many concurrent connections" in json.dumps(r["network"]), r)
        r = A(["python3", "-c", "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen(%r).read()"
               ".decode())" % url], allow=[lit])
        check(t + "allowlisted: python3 urllib through the proxy", r["stdout"].encode() == BODY, r)
        r = A(["git", "clone", "-q", "http://%s/repo.git" % lit, "/tmp/clone"], allow=[lit])
        check(t + "allowlisted: git clone over HTTP through the proxy",
              r["status"] == "success" and hosts_of(r).get(("127.0.0.1", port)), r)

        # names, through the test resolver
        svc = "http://svc.egress.test:%d/index.html" % port
        r = A(["curl", "-sS", "-f", "-m", "10", svc], allow=["svc.egress.test", lit], hosts=hosts)
        check(t + "allowlisted: an allowed name resolving to a listed IP:port",
              r["status"] == "success" and ("svc.egress.test", port) in hosts_of(r), r)
        r = A(["curl", "-sS", "-f", "-m", "10", "http://rebind.egress.test:%d/" % port],
              allow=["rebind.egress.test"], hosts=hosts)
        check(t + "allowlisted: an allowed name resolving to loopback is refused (rebinding)",
              r["status"] == "failed" and "loopback" in refused_of(r).get(("rebind.egress.test", port), ""), r)
        r = A(["curl", "-sS", "-f", "-m", "10", "http://multi.egress.test:%d/index.html" % port],
              allow=["multi.egress.test", lit], hosts=hosts)
        check(t + "allowlisted: each resolved address is checked: 127.0.0.2 skipped, the listed 127.0.0.1 dialled",
              r["status"] == "success" and hosts_of(r).get(("multi.egress.test", port), {}).get("address")
              == "127.0.0.1", r)
        r = A(["python3", "-c", PY_SOCKS_MAPPED, str(port)], allow=[lit])
        check(t + "allowlisted: SOCKS5 to ::ffff:127.0.0.1 is not the listed 127.0.0.1:PORT",
              r["stdout"].split() == ["REPLY", "2"] and not hosts_of(r), r)
        if v6_srv:
            p6 = v6_srv.server_address[1]
            r = A(["curl", "-sS", "-f", "-m", "10", "-g", "http://[::1]:%d/index.html" % p6],
                  allow=["[::1]:%d" % p6])
            check(t + "allowlisted: a listed [::1]:PORT over IPv6",
                  r["status"] == "success" and r["stdout"].encode() == BODY and ("::1", p6) in hosts_of(r), r)
        r = A(["curl", "-sS", "-f", "-m", "10", "http://a.wild.egress.test:%d/" % port],
              allow=["*.wild.egress.test", lit], hosts=hosts)
        check(t + "allowlisted: a *. wildcard matches a subdomain",
              r["status"] == "success" and ("a.wild.egress.test", port) in hosts_of(r), r)
        r = A(["curl", "-sS", "-f", "-m", "10", "http://svc.egress.test.evil.test:%d/" % port],
              allow=["svc.egress.test", lit], hosts=hosts)
        check(t + "allowlisted: a suffix trick is refused by name",
              r["status"] == "failed" and ("svc.egress.test.evil.test", port) in refused_of(r), r)

        r = run("deny", ["python3", "-c", PY_CONNECT, "tcp", lit], as_nobody=nobody)
        check(t + "deny: no connection to a host service", r["stdout"].startswith("FAILED"), r)
        r = run("deny", ["python3", "-c", PY_CONNECT, "abstract", abstract_name], as_nobody=nobody)
        check(t + "deny: a host abstract unix socket is unreachable", r["stdout"].startswith("FAILED"), r)
        check(t + "deny: network_used false", r["network_used"] is False, r)

        # slirp4netns needs /dev/net/tun usable by the user warrant runs as
        tun = "/dev/net/tun"
        tun_ok = os.path.exists(tun) and (os.stat(tun).st_mode & 0o006 == 0o006 if nobody
                                          else os.access(tun, os.R_OK | os.W_OK))
        r = run("full", ["sh", "-c", "grep -q tap0 /proc/net/route && python3 -c \"$0\" tcp %s && "
                         "python3 -c \"$0\" tcp 10.0.2.2:%d && python3 -c \"$0\" abstract %s"
                         % (lit, port, abstract_name), PY_CONNECT], as_nobody=nobody)
        if not shutil.which("slirp4netns") or not tun_ok:
            check(t + "full: refused with a reason where it cannot be built",
                  r["status"] == "blocked" and "refused rather than sharing the host's network" in (r["error"] or ""),
                  r)
        else:
            check(t + "full: routed through tap0, host loopback and abstract sockets unreachable",
                  r["status"] == "success" and [l.split()[0] for l in r["stdout"].splitlines()] == ["FAILED"] * 3, r)

    # Unprivileged with user namespaces switched off (bwrap --disable-userns
    # around the driver): allowlisted is refused before anything runs.
    if "--disable-userns" in subprocess.run(["bwrap", "--help"], capture_output=True, text=True).stdout:
        p = subprocess.run(NOBODY + ["bwrap", "--dev-bind", "/", "/", "--unshare-user", "--disable-userns", "--",
                                     DRIVER, "allowlisted", "--allow", lit, "--", "touch", "/tmp/ran"],
                           capture_output=True, text=True, timeout=60)
        r = json.loads(p.stdout) if p.returncode == 0 else {"error": p.stderr}
        check("[nobody] allowlisted without user namespaces: blocked with the reason, nothing ran",
              r.get("status") == "blocked" and "user namespaces" in (r.get("error") or "")
              and r.get("network") is None, r)
    else:
        print("note: bwrap has no --disable-userns; the no-user-namespace refusal is not exercised")

    if WARRANT:
        Quiet.redirect_to = "http://127.0.0.1:%d/index.html" % other
        warrant_run(tmp, lit, url, "http://%s/redirect" % lit, other)
    for c in fillers + [stuck, abstract]:
        c.close()
    allowed_srv.shutdown()
    other_srv.shutdown()
    if v6_srv:
        v6_srv.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (results["passed"], results["failed"]))
    sys.exit(1 if results["failed"] else 0)


if __name__ == "__main__":
    main()
