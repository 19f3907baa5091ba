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
                          (--launchers 0) shows what the pool saves. With
                          WARRANT_BASELINE=BUILD_DIR, that build's `warrant run` and MCP `run`
                          are interleaved too (before/after on a busy machine). Then the
                          server's side of one MCP run, phase by phase (perf record of its
                          threads' system calls, with linux-perf installed).
  e2e.py startup [N]      the CLI without the sandbox: wall time of `warrant --version` and
                          `warrant check` (the one-command policy, the bundled default pack),
                          median of N (200) interleaved runs; with WARRANT_BASELINE=BUILD_DIR the
                          same commands of that build are interleaved too, and the ratios printed.
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

    def __init__(self, fx, ws, *extra, wrap=(), warrantd=None):
        self.ws = ws
        self.c = mcpraw.Stdio(fx, *extra, wrap=wrap, warrantd=warrantd)
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
    # The baseline's own state dir: a database is never opened by a build older than the one that wrote it.
    btmp, bfx, bcli_args = fixture() if baseline_warrant() else (None, None, None)
    try:
        bare = bare_argv(fx.ws)
        cli = [WARRANT, "run", "--quiet"] + cli_args
        timed(cli)  # creates the key and the database
        base = [baseline_warrant(), "run", "--quiet"] + bcli_args if btmp else None
        results = []
        for r in range(repeat):
            srv, cold = Mcp(fx, fx.ws), Mcp(fx, fx.ws, "--launchers", "0")
            base_srv = Mcp(bfx, bfx.ws, warrantd=baseline_warrantd()) if base else None
            t = {"cli": [], "bare_cli": [], "mcp": [], "bare_mcp": [], "mcp_nopool": []}
            if base:
                t["base_cli"], t["base_mcp"] = [], []
            for i in range(-WARMUP, runs):
                row = {"cli": timed(cli), "bare_cli": timed(bare), "mcp": srv.run(), "bare_mcp": timed(bare),
                       "mcp_nopool": cold.run()}
                if base:
                    row["base_cli"], row["base_mcp"] = timed(base), base_srv.run()
                if i >= 0:
                    for k, v in row.items():
                        t[k].append(v)
            for s in (srv, cold, base_srv):
                if s:
                    s.close()
            print("run %d of %d: %d runs each, interleaved (cli, bare, mcp, bare, mcp without launchers), "
                  "%.0f ms apart, after %d warm-up rounds" % (r + 1, repeat, runs, GAP_S * 1e3, WARMUP))
            m = {k: statistics.median(v) for k, v in t.items()}
            m["cli_ratio"] = median_ratio("  warrant run (CLI, whole process)", t["cli"], t["bare_cli"])
            m["mcp_ratio"] = median_ratio("  MCP run over stdio", t["mcp"], t["bare_mcp"])
            m["mcp_nopool_ratio"] = median_ratio("  MCP run, --launchers 0", t["mcp_nopool"], t["bare_mcp"])
            if base:
                m["base_cli_ratio"] = median_ratio("  warrant run of WARRANT_BASELINE", t["base_cli"], t["bare_cli"])
                m["base_mcp_ratio"] = median_ratio("  MCP run of WARRANT_BASELINE", t["base_mcp"], t["bare_mcp"])
                m["mcp_vs_base"] = statistics.median(t["mcp"]) / statistics.median(t["base_mcp"])
            results.append(m)
        med = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print("median of %d runs: warrant run %.2f ms vs bare %.2f ms = %.2f x (target <= 1.3); "
              "MCP run %.2f ms vs bare %.2f ms = %.2f x (target <= 1.15); without warm launchers %.2f ms = %.2f x" % (
                  repeat, med["cli"], med["bare_cli"], med["cli_ratio"], med["mcp"], med["bare_mcp"],
                  med["mcp_ratio"], med["mcp_nopool"], med["mcp_nopool_ratio"]))
        if base:
            print("  WARRANT_BASELINE's warrant run %.2f ms = %.2f x bare, its MCP run %.2f ms = %.2f x bare; "
                  "MCP run now / WARRANT_BASELINE's %.3f (medians of %d runs)" % (
                      med["base_cli"], med["base_cli_ratio"], med["base_mcp"], med["base_mcp_ratio"],
                      med["mcp_vs_base"], repeat))
        print("RESULT " + " ".join("%s=%.3f" % kv for kv in sorted(med.items())))
        breakdown(fx, cli, bare)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if btmp:
            shutil.rmtree(btmp, ignore_errors=True)


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
    server_phases(fx, bare, 30)
    print("  one fdatasync of a 4 KiB append here: median %.2f ms (of 50)" % fdatasync_ms(fx.tmp, 50))
    cli_instructions(fx, cli)
    server_instructions()


SERVER_INSTR_RUNS = (5, 25)


def server_run_instructions(warrantd):
    """Instructions warrantd executes per MCP run (every thread of the server process; the sandbox's
    processes are not followed): callgrind totals of a session with 25 runs less one with 5, over 20."""
    totals = []
    for runs in SERVER_INSTR_RUNS:
        tmp, fx, _ = fixture()
        out = os.path.join(tmp, "callgrind.out")
        srv = Mcp(fx, fx.ws, wrap=["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out], warrantd=warrantd)
        for _ in range(runs):
            srv.run()
        srv.close()
        totals.append(next(int(ln.split()[1]) for ln in open(out) if ln.startswith(("summary:", "totals:"))))
        shutil.rmtree(tmp, ignore_errors=True)
    return (totals[1] - totals[0]) / (SERVER_INSTR_RUNS[1] - SERVER_INSTR_RUNS[0])


def server_instructions():
    """The server's instructions per run: stable whatever the load, so they compare builds (WARRANT_BASELINE)."""
    if not shutil.which("valgrind"):
        return
    now = server_run_instructions(mcpraw.WARRANTD)
    line = "  MCP run: %.0f k instructions in warrantd per run (valgrind --tool=callgrind, all its threads)" % (
        now / 1e3)
    if baseline_warrant():
        base = server_run_instructions(baseline_warrantd())
        line += "; WARRANT_BASELINE's %.0f k, now/baseline %.3f" % (base / 1e3, now / base)
    print(line)


# The server's side of one MCP run, from system calls of warrantd's own threads (perf record -p --no-inherit:
# tracepoints, no stop per call, the sandbox's processes untraced, so the runs keep their speed). The run
# threads are kept across runs, so the ones the warm-up created are traced. Timestamps are CLOCK_MONOTONIC,
# the clock of the client's time.monotonic().
SERVER_EVENTS = (("syscalls:sys_enter_read", "fd == 0"), ("syscalls:sys_enter_sendmsg", None),
                 ("syscalls:sys_enter_prctl", "option == 36"), ("syscalls:sys_enter_fcntl", None),
                 ("syscalls:sys_enter_fdatasync", None),
                 ("syscalls:sys_exit_fdatasync", None), ("syscalls:sys_enter_fsync", None),
                 ("syscalls:sys_exit_wait4", "ret > 0"), ("syscalls:sys_enter_write", "count == 8"),
                 ("syscalls:sys_enter_writev", "fd == 1"))
# (label, from, to): marks found in each run's events, in this order.
SERVER_PHASES = (
    ("request written -> read by the loop", "sent", "read"),
    ("parse, checks, run thread, gate -> executor", "read", "executor"),
    ("executor: plan, launcher hand-off -> launch", "executor", "launch"),
    ("sandbox: launch -> bwrap reaped", "launch", "reaped"),
    ("executor's end, receipt built", "reaped", "seal_begin"),
    ("seal: sign, validate, append (SQL)", "seal_begin", "seal_sync"),
    ("seal's fdatasync", "seal_sync", "seal_durable"),
    ("response built, loop woken", "seal_durable", "woken"),
    ("loop writes the response", "woken", "written"),
    ("response written -> read by the client", "written", "received"),
)


def run_marks(events, loop_tid):
    """The marks of one run from its events [(tid, t, name, args)] (request read to response written)."""
    m, worker = {}, None
    for tid, t, name, args in events:
        if name == "sys_enter_read" and tid == loop_tid:
            m.setdefault("read", t)
        elif name == "sys_enter_prctl" and tid != loop_tid and "executor" not in m:
            m["executor"], worker = t, tid  # wr_exec_run's first call: PR_SET_CHILD_SUBREAPER
        elif name == "sys_enter_sendmsg" and tid == worker and "launch" not in m:
            m["launch"] = t
        elif tid != worker:
            if name == "sys_enter_writev" and tid == loop_tid and "woken" in m:
                m.setdefault("written", t)
        elif name == "sys_enter_fdatasync" and "reaped" not in m:
            m.setdefault("pre_sync", t)
        elif name == "sys_exit_fdatasync" and "reaped" not in m:
            m.setdefault("pre_durable", t)
        elif name == "sys_exit_wait4":
            m.setdefault("reaped", t)
        elif name == "sys_enter_fcntl" and "reaped" in m:
            m.setdefault("seal_begin", t)
        elif name == "sys_enter_fdatasync" and "seal_begin" in m:
            m.setdefault("seal_sync", t)
        elif name == "sys_exit_fdatasync" and "seal_sync" in m:
            m.setdefault("seal_durable", t)
        elif name == "sys_enter_write" and "seal_durable" in m:
            m.setdefault("woken", t)
    return m


def server_phases(fx, bare, n):
    if not shutil.which("perf"):
        print("  (perf not installed, apt-get install linux-perf: no breakdown of the server's side)")
        return
    srv = Mcp(fx, fx.ws)
    for _ in range(WARMUP):
        srv.run()
    data = os.path.join(fx.tmp, "perf.data")
    ev = sum((["-e", e] + (["--filter", f] if f else []) for e, f in SERVER_EVENTS), [])
    rec = subprocess.Popen(["perf", "record", "-q", "-k", "monotonic", "--no-inherit", "-p", str(srv.c.p.pid),
                            "-o", data] + ev, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)  # attached
    client, bare_ms = [], []
    for _ in range(n):
        bare_ms.append(timed(bare))
        req = json.dumps(srv.request()).encode()
        time.sleep(GAP_S)
        t0 = time.monotonic()
        srv.c.send_raw(req)
        Mcp.check(srv.c.recv(60))
        client.append((t0, time.monotonic()))
    rec.send_signal(2)
    rec.wait(60)
    loop_tid = srv.c.p.pid
    srv.close()
    script = subprocess.run(["perf", "script", "-i", data, "-F", "tid,time,event,trace"], capture_output=True,
                            text=True).stdout
    events = []
    for ln in script.splitlines():
        m = re.match(r"\s*(\d+)\s+([\d.]+):\s+syscalls:(\w+):\s*(.*)", ln)
        if m:
            events.append((int(m.group(1)), float(m.group(2)), m.group(3), m.group(4)))
    per = {label: [] for label, _, _ in SERVER_PHASES}
    pre, pre_sync, syncs, total = [], [], [], []
    for t0, t1 in client:
        mine = [e for e in events if t0 <= e[1] <= t1]
        m = run_marks(mine, loop_tid)
        m["sent"], m["received"] = t0, t1
        for label, a, b in SERVER_PHASES:
            if a in m and b in m:
                per[label].append((m[b] - m[a]) * 1e3)
        if "pre_durable" in m and "launch" in m:
            pre.append((m["pre_durable"] - m["launch"]) * 1e3)
            pre_sync.append((m["pre_durable"] - m["pre_sync"]) * 1e3)
        syncs.append(sum(1 for e in mine if e[2] in ("sys_enter_fdatasync", "sys_enter_fsync")))
        total.append((t1 - t0) * 1e3)
    if not total:
        print("  (no complete run in the perf record: no breakdown of the server's side)")
        return
    print("  MCP run, the server's side (perf record of warrantd's threads' system calls; medians of %d runs, "
          "load %s):" % (len(total), open("/proc/loadavg").read().split()[0]))
    for label, _, _ in SERVER_PHASES:
        if per[label]:
            print("      %-52s %6.2f ms" % (label, statistics.median(per[label])))
        else:
            print("      %-52s (its marks were not found)" % label)
    print("      %-52s %6.2f ms   (bare bwrap, interleaved: %.2f ms)" % (
        "request written -> response read (whole run)", statistics.median(total), statistics.median(bare_ms)))
    if pre:
        print("      pre-exec commit, overlapping the sandbox's set-up: durable %.2f ms after the launch "
              "(its fdatasync %.2f ms)" % (statistics.median(pre), statistics.median(pre_sync)))
    print("  MCP run: %.1f fsync+fdatasync per run (mean of %d)" % (sum(syncs) / len(syncs), len(syncs)))


# Parts of `warrant run`'s own CPU, by the function that does each (inclusive counts: the policy load
# includes its schema's compilation).
CLI_PARTS = (("dynamic loading and relocation", "_dl_start"),
             ("signing key (incl. libcrypto init, first digest fetch)", "wr_server_key_load_or_create"),
             ("embedded schemas compiled (contract, policy, receipt)", "wr_schema_embedded"),
             ("policy load (YAML, schema, examples, store)", "wr_gate_reload_policy"),
             ("store open (SQLite)", "wr_store_open"),
             ("the run (contract, decision, sandbox, seal)", "wr_gate_run"))


def callgrind(argv, out_dir):
    """The callgrind profile of the warrant process itself: valgrind follows the fork into the sandbox
    launcher too, which writes its own file (a higher pid), left out."""
    for f in os.listdir(out_dir):
        os.unlink(os.path.join(out_dir, f))
    subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + os.path.join(out_dir, "cg.%p")] + argv,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    files = sorted(os.listdir(out_dir), key=lambda f: int(f.split(".")[1]))
    return os.path.join(out_dir, files[0]) if files else None


def cli_instructions(fx, cli):
    """Instructions executed by the warrant process (valgrind --tool=callgrind): stable whatever the load,
    so they compare builds on a busy machine. `warrant run` is also broken down by part."""
    if not shutil.which("valgrind"):
        print("  (valgrind not installed: no instruction counts)")
        return
    out_dir = os.path.join(fx.tmp, "callgrind")
    os.mkdir(out_dir)
    # The default pack as a policy file (its workspace prefixes pointed at ours): a policy with examples
    # and a grammar per allowed tool; the first run records its examples, the measured one uses the record.
    default = os.path.join(fx.tmp, "default.yaml")
    with open(default, "w") as f:
        f.write(open(os.path.join(ROOT, "policies", "default.yaml")).read().replace("/workspace", fx.ws))
    with_default = [a if a != fx.policy else default for a in cli]
    timed(with_default)
    runs = ((cli, "warrant run"), (with_default, "warrant run, default pack as --policy file"),
            ([WARRANT, "check", "--policy", fx.policy, cli[-1]], "warrant check"),
            ([WARRANT, "check", cli[-1]], "warrant check, bundled default pack"),
            ([WARRANT, "--version"], "warrant --version"))
    for argv, name in runs:
        prof = callgrind(argv, out_dir)
        total = None
        for ln in open(prof) if prof else ():
            if ln.startswith(("summary:", "totals:")):
                total = int(ln.split()[1])
        if total is None:
            continue
        print("  %-42s %6.1f M instructions in the warrant process (valgrind --tool=callgrind)" % (name, total / 1e6))
        if argv is not cli:
            continue
        ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", prof],
                             capture_output=True, text=True).stdout
        incl = {}
        for m in re.finditer(r"^\s*([\d,]+) \([^)]*\)\s+\S*?:(\w+) \[", ann, re.M):
            incl.setdefault(m.group(2), int(m.group(1).replace(",", "")))
        for label, fn in CLI_PARTS:
            if fn in incl:
                print("      %-56s %5.1f M" % (label, incl[fn] / 1e6))


def concurrent(n, rounds=3):
    tmp, fx, _ = fixture()
    try:
        # a client may hold at most half of --max-runs
        srv = Mcp(fx, fx.ws, "--max-runs", str(2 * n), "--max-runs-per-client", str(n))
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


def baseline_warrantd():
    """The warrantd of the build dir WARRANT_BASELINE names."""
    return os.path.join(os.path.abspath(os.environ["WARRANT_BASELINE"]), "server", "warrantd")


def baseline_warrant():
    """The warrant binary of the build dir WARRANT_BASELINE names, to interleave with this build's."""
    b = os.environ.get("WARRANT_BASELINE")
    return os.path.join(os.path.abspath(b), "clients", "warrant") if b else None


def startup(n):
    tmp, fx, cli_args = fixture()
    try:
        contract = cli_args[-1]
        builds = [("now", WARRANT)]
        if baseline_warrant():
            builds.insert(0, ("baseline", baseline_warrant()))
        cmds = (("warrant --version", ["--version"]), ("warrant check", ["check", "--policy", fx.policy, contract]),
                ("warrant check, bundled default pack", ["check", contract]))
        t = {(b, c): [] for b, _ in builds for c, _ in cmds}
        for i in range(-WARMUP, n):
            for c, args in cmds:
                for b, exe in builds:
                    t0 = time.perf_counter()
                    subprocess.run([exe] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    if i >= 0:
                        t[(b, c)].append((time.perf_counter() - t0) * 1e3)
        print("CLI start-up, median of %d interleaved runs (wall, fork/exec to exit; load %s)" % (
            n, open("/proc/loadavg").read().split()[0]))
        for c, _ in cmds:
            m = {b: statistics.median(t[(b, c)]) for b, _ in builds}
            line = "  %-36s %s" % (c, "   ".join("%s %.2f ms" % (b, m[b]) for b, _ in builds))
            if "baseline" in m:
                line += "   now/baseline %.2f" % (m["now"] / m["baseline"])
            print(line)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench: needs root (the sandbox and bare bwrap drop to nobody)")
    what = sys.argv[1] if len(sys.argv) > 1 else "latency"
    arg = int(sys.argv[2]) if len(sys.argv) > 2 else None
    if what == "latency":
        latency(arg or 30, int(sys.argv[3]) if len(sys.argv) > 3 else 5)
    elif what == "startup":
        startup(arg or 200)
    elif what == "concurrent":
        concurrent(arg or 50)
    else:
        sys.exit(__doc__)
