#!/usr/bin/env python3
"""What reading WebSocket frames in ws.c (instead of lws) costs warrantd:
server CPU per `check` round trip and per large message, and resident
memory per idle WebSocket session, for two builds run interleaved.

usage: ws_frames.py BASELINE_BUILD BUILD [ROUNDS]   env: WS_FRAMES_N (2000 checks per round)"""
import os
import resource
import statistics
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "server"))
import mcpraw  # noqa: E402

TOKEN = "tok-tester-0123456789abcdef"
N = int(os.environ.get("WS_FRAMES_N", "2000"))
BIG = 256 * 1024  # bytes of one large message
N_BIG = 200
IDLE = 100        # sessions for the memory figure (under one identity's share)


def cpu_seconds(pid):
    """CPU time of all the process's threads, in nanoseconds' resolution
    (schedstat; /proc/PID/stat counts clock ticks)."""
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:  # a thread that just ended
            pass
    return total / 1e9


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def session(srv):
    c = mcpraw.WS(srv.port, token=TOKEN)
    c.send(mcpraw.INIT)
    c.recv()
    c.send(mcpraw.INITIALIZED)
    return c


def cpu_per(srv, c, msg, n):
    """Server CPU microseconds per round trip of msg."""
    before = cpu_seconds(srv.p.pid)
    for i in range(n):
        msg["id"] = i
        c.send(msg)
        c.recv(30)
    return (cpu_seconds(srv.p.pid) - before) / n * 1e6


def one_round(build):
    mcpraw.WARRANTD = os.path.join(build, "server", "warrantd")
    fx = mcpraw.Fixture()
    srv = mcpraw.Listener(fx, "--max-message-bytes", str(2 * BIG))
    try:
        c = session(srv)
        check = {"jsonrpc": "2.0", "id": 0, "method": "tools/call",
                 "params": {"name": "check", "arguments": {"contract": mcpraw.contract(fx.ws, ["echo", "x"])}}}
        cpu_per(srv, c, check, 50)  # warm up
        out = {"check": cpu_per(srv, c, check, N)}
        big = {"jsonrpc": "2.0", "id": 0, "method": "ping", "params": {"pad": "x" * BIG}}
        out["big"] = cpu_per(srv, c, big, N_BIG)
        time.sleep(0.3)
        base = rss_kib(srv.p.pid)
        held = [session(srv) for _ in range(IDLE)]
        time.sleep(0.3)
        out["rss"] = (rss_kib(srv.p.pid) - base) / IDLE
        for h in held + [c]:
            h.s.close()
    finally:
        srv.stop()
        fx.cleanup()
    return out


def main():
    old, new = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    res = {old: [], new: []}
    for _ in range(rounds):
        for b in (old, new):
            res[b].append(one_round(b))
    print("load: %s" % open("/proc/loadavg").read().split()[:3])
    if os.environ.get("WS_FRAMES_VERBOSE"):
        for b in (old, new):
            print(b, res[b])
    for key, what, unit in (("check", "server CPU per WebSocket check round trip", "us"),
                            ("big", "server CPU per %d KiB WebSocket message (ping)" % (BIG // 1024), "us"),
                            ("rss", "resident memory per idle WebSocket session", "KiB")):
        a = statistics.median(r[key] for r in res[old])
        b = statistics.median(r[key] for r in res[new])
        print("%-52s baseline %8.1f %s, ws.c frames %8.1f %s: ratio %.2f (median of %d interleaved rounds)"
              % (what, a, unit, b, unit, b / a, rounds))


main()
