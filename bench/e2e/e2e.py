#!/usr/bin/env python3
"""The run path end to end against bare bubblewrap (issue 14).

  e2e.py latency [RUNS [REPEAT]]
                          `warrant run` of a policy-allowed /bin/true contract and MCP `run`
                          over stdio (request written -> response with the signed, durable
                          receipt read), each interleaved with bare bwrap of the same minimal
                          profile; medians and ratios; then where the time goes (phase
                          timestamps from strace, fsync/fdatasync per run, CPU instructions).
                          REPEAT (5) times, each with a fresh server; the median of the
                          REPEAT medians and ratios is the figure. Every timed run follows a
                          pause of GAP_S, as agent runs seconds apart do: the kernel's cgroup
                          attach is cheap only right after another one, which back-to-back
                          runs would hide. A second server without warm launchers
                          (--launchers 0) shows what the pool saves.
  e2e.py concurrent [N]   N (50) MCP runs of /bin/true in flight at once on one stdio
                          connection: runs/s and p99 latency, median of 3 rounds.

Bare bwrap: `setpriv --reuid=65534 --regid=65534 --clear-groups bwrap --unshare-all
--die-with-parent --new-session` with /usr read-only, /proc, /dev, tmpfs /tmp, the workspace
read-only, started by the same Python process the same way (fork/exec, wait). Needs root (the
sandbox drops to nobody). WARRANT_BUILD: the build dir (default ./build). WARRANT_E2E_DIR: where the
state dir and workspace go (default $TMPDIR; on a tmpfs, e.g. `mount -t tmpfs -o mode=755 tmpfs DIR`, the runs
show what their fsyncs cost).
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "server"))
sys.path.insert(0, os.path.join(ROOT, "tests", "receipts"))
import mcpraw  # noqa: E402  (warrantd over stdio, the server tests' fixture)
from truerun import write_truerun  # noqa: E402  (policy allowing /bin/true, its contract)

BUILD = os.path.abspath(os.environ.get("WARRANT_BUILD", os.path.join(ROOT, "build")))
WARRANT = os.path.join(BUILD, "clients", "warrant")
mcpraw.WARRANTD = os.path.join(BUILD, "server", "warrantd")
NOBODY = "65534"
WARMUP = 3
GAP_S = 0.06  # longer than the RCU grace period a cold cgroup attach waits for


def bare_argv(ws):
    usr = ["--ro-bind", "/usr", "/usr"]
    for d in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink("/" + d):
            usr += ["--symlink", os.readlink("/" + d), "/" + d]
    return (["setpriv", "--reuid=" + NOBODY, "--regid=" + NOBODY, "--clear-groups", "bwrap", "--unshare-all",
             "--die-with-parent", "--new-session"] + usr +
            ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--ro-bind", ws, ws, "--chdir", ws, "/bin/true"])


def timed(argv):
    time.sleep(GAP_S)
    t0 = time.perf_counter()
    p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit("bench: %s failed (%d): %s" % (argv[0], p.returncode, p.stderr.decode()[-500:]))
    return dt * 1e3


class Mcp:
    """One warrantd --stdio session; run() is one `run` request to its response."""

    def __init__(self, fx, ws, *extra):
        self.ws = ws
        self.c = mcpraw.Stdio(fx, *extra)
        self.c.send(mcpraw.INIT)
        self.c.recv()
        self.c.send(mcpraw.INITIALIZED)
        self.n = 0

    def request(self):
        self.n += 1
        ct = mcpraw.contract(self.ws, ["/bin/true"], cid="e2e-bench-%06d" % self.n, timeout=5)
        return {"jsonrpc": "2.0", "id": self.n, "method": "tools/call",
                "params": {"name": "run", "arguments": {"contract": ct}}}

    @staticmethod
    def check(msg):
        r = msg.get("result") or {}
        sc = r.get("structuredContent") or {}
        receipt = sc.get("receipt") or {}
        if r.get("isError") or receipt.get("status") != "success" or "signature" not in receipt:
            sys.exit("bench: MCP run did not succeed: %s" % json.dumps(msg)[:500])

    def run(self):
        req = json.dumps(self.request()).encode()
        time.sleep(GAP_S)
        t0 = time.perf_counter()
        self.c.send_raw(req)
        msg = self.c.recv(60)
        dt = time.perf_counter() - t0
        self.check(msg)
        return dt * 1e3

    def close(self):
        self.c.close()


def fixture():
    tmp = tempfile.mkdtemp(prefix="wr-e2e-", dir=os.environ.get("WARRANT_E2E_DIR"))
    os.chmod(tmp, 0o755)
    cli_args = write_truerun(tmp, "e2e")
    fx = mcpraw.Fixture.__new__(mcpraw.Fixture)
    fx.tmp, fx.ws = tmp, os.path.join(tmp, "ws")
    fx.state, fx.policy = os.path.join(tmp, "state"), os.path.join(tmp, "policy.yaml")
    return tmp, fx, cli_args


def median_ratio(name, mine, bare):
    m, b = statistics.median(mine), statistics.median(bare)
    print("%-34s median %7.2f ms   bare bwrap %6.2f ms   ratio %.2f" % (name, m, b, m / b))
    return m / b


def latency(runs, repeat):
    tmp, fx, cli_args = fixture()
    try:
        bare = bare_argv(fx.ws)
        cli = [WARRANT, "run", "--quiet"] + cli_args
        timed(cli)  # creates the key and the database
        results = []
        for r in range(repeat):
            srv, cold = Mcp(fx, fx.ws), Mcp(fx, fx.ws, "--launchers", "0")
            t = {"cli": [], "bare_cli": [], "mcp": [], "bare_mcp": [], "mcp_nopool": []}
            for i in range(-WARMUP, runs):
                row = {"cli": timed(cli), "bare_cli": timed(bare), "mcp": srv.run(), "bare_mcp": timed(bare),
                       "mcp_nopool": cold.run()}
                if i >= 0:
                    for k, v in row.items():
                        t[k].append(v)
            srv.close()
            cold.close()
            print("run %d of %d: %d runs each, interleaved (cli, bare, mcp, bare, mcp without launchers), "
                  "%.0f ms apart, after %d warm-up rounds" % (r + 1, repeat, runs, GAP_S * 1e3, WARMUP))
            m = {k: statistics.median(v) for k, v in t.items()}
            m["cli_ratio"] = median_ratio("  warrant run (CLI, whole process)", t["cli"], t["bare_cli"])
            m["mcp_ratio"] = median_ratio("  MCP run over stdio", t["mcp"], t["bare_mcp"])
            m["mcp_nopool_ratio"] = median_ratio("  MCP run, --launchers 0", t["mcp_nopool"], t["bare_mcp"])
            results.append(m)
        med = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print("median of %d runs: warrant run %.2f ms vs bare %.2f ms = %.2f x (target <= 1.3); "
              "MCP run %.2f ms vs bare %.2f ms = %.2f x (target <= 1.15); without warm launchers %.2f ms = %.2f x" % (
                  repeat, med["cli"], med["bare_cli"], med["cli_ratio"], med["mcp"], med["bare_mcp"],
                  med["mcp_ratio"], med["mcp_nopool"], med["mcp_nopool_ratio"]))
        print("RESULT " + " ".join("%s=%.3f" % kv for kv in sorted(med.items())))
        breakdown(fx, cli, bare)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


SYNCS = ("fsync", "fdatasync")


def strace(argv, out, trace):
    subprocess.run(["strace", "-f", "-qq", "-ttt", "-o", out, "-e", "trace=" + trace] + argv,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return open(out).read().splitlines()


def phases(lines, t_start):
    """Milliseconds from t_start (warrant's execve) to: the first execve of bwrap, the sandbox's exit as seen by
    the parent (wait4 of bwrap's pid), each fsync, the exit."""
    marks, bwrap_pid = [], None
    for ln in lines:
        m = re.match(r"(\d+) +(\d+\.\d+) (\w+)\((.*)", ln)
        if not m:
            continue
        pid, ts, call, rest = int(m.group(1)), float(m.group(2)), m.group(3), m.group(4)
        ms = (ts - t_start) * 1e3
        if call == "execve" and "warrant-launch" in rest.split(",")[0]:
            marks.append((ms, "exec warrant-launch"))
        elif call == "execve" and "bwrap" in rest.split(",")[0] and bwrap_pid is None:
            bwrap_pid = pid
            marks.append((ms, "exec bwrap"))
        elif call == "wait4" and bwrap_pid and rest.startswith(str(bwrap_pid)):
            marks.append((ms, "bwrap reaped"))
        elif call in SYNCS:
            marks.append((ms, call))
    return marks


def fdatasync_ms(where, n):
    """What one durable commit's flush costs on this file system."""
    path = os.path.join(where, "sync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    times = []
    for _ in range(n):
        os.write(fd, b"x" * 4096)
        t0 = time.perf_counter()
        os.fdatasync(fd)
        times.append((time.perf_counter() - t0) * 1e3)
    os.close(fd)
    os.unlink(path)
    return statistics.median(times)


def breakdown(fx, cli, bare):
    print("\nwhere the time goes (one run under strace -f: absolute times are inflated, the order is not)")
    out = os.path.join(fx.tmp, "trace")
    lines = strace(cli, out, "execve,wait4,fsync,fdatasync,exit_group")
    marks = phases(lines, float(lines[0].split()[1]))
    print("  warrant run: " + ", ".join("%s %.1f" % (n, ms) for ms, n in marks) + " ms")
    # fsync/fdatasync per run, over n runs.
    n = 10
    syncs = 0
    for _ in range(n):
        lines = strace(cli, out, ",".join(SYNCS))
        syncs += sum(1 for ln in lines if re.search(r"\b(fsync|fdatasync)\(", ln))
    print("  warrant run: %.1f fsync+fdatasync per run (mean of %d)" % (syncs / n, n))
    # The server: strace attached to every thread after start-up, over n runs.
    srv = Mcp(fx, fx.ws)
    srv.run()
    pid = srv.c.p.pid
    tids = sum((["-p", t] for t in os.listdir("/proc/%d/task" % pid)), [])
    st = subprocess.Popen(["strace", "-f", "-qq", "-o", out, "-e", "trace=" + ",".join(SYNCS)] + tids,
                          stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # attached
    for _ in range(n):
        srv.run()
    st.terminate()
    st.wait(30)
    srv.close()
    syncs = sum(1 for ln in open(out) if re.search(r"\b(fsync|fdatasync)\(", ln))
    print("  MCP run: %.1f fsync+fdatasync per run (mean of %d)" % (syncs / n, n))
    print("  one fdatasync of a 4 KiB append here: median %.2f ms (of 50)" % fdatasync_ms(fx.tmp, 50))
    # CPU in the warrant process itself (not bwrap's), as instructions: stable under load.
    for argv, name in ((cli, "warrant run"), ([WARRANT, "check", "--policy", fx.policy, cli[-1]], "warrant check")):
        r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + argv,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        m = re.search(r"Collected : (\d+)", r.stderr)
        if m:
            print("  %-13s %6.1f M instructions in the warrant process (valgrind --tool=callgrind)" % (
                name, int(m.group(1)) / 1e6))


def concurrent(n, rounds=3):
    tmp, fx, _ = fixture()
    try:
        srv = Mcp(fx, fx.ws, "--max-runs", str(n), "--max-runs-per-client", str(n))
        srv.run()
        rates, p99s = [], []
        for _ in range(rounds):
            reqs = [srv.request() for _ in range(n)]
            sent = {}
            t0 = time.perf_counter()
            for r in reqs:
                sent[r["id"]] = time.perf_counter()
                srv.c.send(r)
            lat = []
            while len(lat) < n:
                msg = srv.c.recv(120)
                if "id" not in msg:
                    continue  # a notification
                lat.append((time.perf_counter() - sent[msg["id"]]) * 1e3)
                Mcp.check(msg)
            total = time.perf_counter() - t0
            rates.append(n / total)
            p99s.append(statistics.quantiles(lat, n=100)[98])
        srv.close()
        print("%d concurrent MCP runs of /bin/true: %.1f runs/s, p99 %.1f ms (median of %d rounds)" % (
            n, statistics.median(rates), statistics.median(p99s), rounds))
        print("RESULT concurrent=%d runs_per_s=%.1f p99_ms=%.1f" % (n, statistics.median(rates),
                                                                  statistics.median(p99s)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench: needs root (the sandbox and bare bwrap drop to nobody)")
    what = sys.argv[1] if len(sys.argv) > 1 else "latency"
    arg = int(sys.argv[2]) if len(sys.argv) > 2 else None
    if what == "latency":
        latency(arg or 30, int(sys.argv[3]) if len(sys.argv) > 3 else 5)
    elif what == "concurrent":
        concurrent(arg or 50)
    else:
        sys.exit(__doc__)
