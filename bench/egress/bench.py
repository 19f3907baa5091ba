"""bench/egress/run.sh's measuring part: see that script.

    bench.py EGRESS_DRIVER RUNS [BASELINE_EGRESS_DRIVER]
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile

SIZE_MIB = 100
MIB = 1024 * 1024
CC = "/proc/sys/net/ipv4/tcp_congestion_control"


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def load():
    return "%.2f" % os.getloadavg()[0]


def proxied(driver, port, curl):
    """curl's rate through the egress proxy of an allowlisted run, and the
    CPU time of the driver's process (the proxy and the supervision)."""
    p = subprocess.run([driver, "allowlisted", "--allow", "127.0.0.1:%d" % port, "--"] + curl,
                       capture_output=True, text=True)
    r = json.loads(p.stdout) if p.returncode == 0 else {"status": "driver failed", "error": p.stderr.strip()}
    if r["status"] != "success":
        sys.exit("egress bench: proxied download through %s failed: %s %s" % (driver, r["status"], r.get("error")))
    return float(r["stdout"]) / MIB, r["cpu_ms"] / 1000


def rates(name, values):
    return "%s %.0f MiB/s (%.0f - %.0f)" % (name, statistics.median(values), min(values), max(values))


def main():
    driver, runs = sys.argv[1], int(sys.argv[2])
    baseline = sys.argv[3] if len(sys.argv) > 3 else None
    with open(CC) as f:
        cc = f.read().strip()
    print("load average %s; TCP congestion control here: %s" % (load(), cc))
    with tempfile.TemporaryDirectory(prefix="wr-egress-bench-") as d:
        blob = os.path.join(d, "blob")
        with open(blob, "wb") as f:
            for _ in range(SIZE_MIB):
                f.write(os.urandom(MIB))
        srv = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "serve.py"), blob],
                               stdout=subprocess.PIPE, text=True)
        try:
            port = int(srv.stdout.readline())
            curl = ["curl", "-sS", "-o", "/dev/null", "-w", "%{speed_download}", "http://127.0.0.1:%d/blob" % port]
            direct, through, base, curl_cpu, proxy_cpu = [], [], [], [], []
            for _ in range(runs):
                before = child_cpu()
                direct.append(float(subprocess.run(curl, capture_output=True, text=True, check=True).stdout) / MIB)
                curl_cpu.append(child_cpu() - before)
                rate, cpu = proxied(driver, port, curl)
                through.append(rate)
                proxy_cpu.append(cpu)
                if baseline:
                    base.append(proxied(baseline, port, curl)[0])
        finally:
            srv.kill()
            srv.wait()
    dm, pm = statistics.median(direct), statistics.median(through)
    print("%d MiB download, median of %d interleaved rounds: %s, %s: %.0f %% of direct (goal >= 80 %%)"
          % (SIZE_MIB, runs, rates("direct", direct), rates("through the egress proxy", through), 100 * pm / dm))
    if baseline:
        bm = statistics.median(base)
        print("baseline %s: %s: %.0f %% of direct; this build / baseline %.2fx"
              % (baseline, rates("through its proxy", base), 100 * bm / dm, pm / bm))
    print("CPU per download, median: the proxy process %.0f ms; curl itself, direct, %.0f ms; load average %s"
          % (1000 * statistics.median(proxy_cpu), 1000 * statistics.median(curl_cpu), load()))


if __name__ == "__main__":
    main()
