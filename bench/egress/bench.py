"""bench/egress/run.sh's measuring part: see that script.

    bench.py EGRESS_DRIVER RUNS
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


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main():
    driver, runs = sys.argv[1], int(sys.argv[2])
    with tempfile.TemporaryDirectory(prefix="wr-egress-bench-") as d:
        blob = os.path.join(d, "blob")
        with open(blob, "wb") as f:
            for _ in range(SIZE_MIB):
                f.write(os.urandom(MIB))
        srv = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "serve.py"), blob],
                               stdout=subprocess.PIPE, text=True)
        try:
            port = int(srv.stdout.readline())
            url = "http://127.0.0.1:%d/blob" % port
            curl = ["curl", "-sS", "-o", "/dev/null", "-w", "%{speed_download}", url]
            direct, proxied, curl_cpu, proxy_cpu = [], [], [], []
            for _ in range(runs):
                before = child_cpu()
                direct.append(float(subprocess.run(curl, capture_output=True, text=True, check=True).stdout))
                curl_cpu.append(child_cpu() - before)
                out = subprocess.run([driver, "allowlisted", "--allow", "127.0.0.1:%d" % port, "--"] + curl,
                                     capture_output=True, text=True, check=True).stdout
                r = json.loads(out)
                if r["status"] != "success":
                    sys.exit("egress bench: proxied download failed: %r" % r)
                proxied.append(float(r["stdout"]))
                proxy_cpu.append(r["cpu_ms"] / 1000)
        finally:
            srv.kill()
            srv.wait()
    d, p = statistics.median(direct) / MIB, statistics.median(proxied) / MIB
    print("%d MiB download, median of %d: direct %.0f MiB/s, through the egress proxy %.0f MiB/s: "
          "%.0f %% of direct (goal >= 80 %%)" % (SIZE_MIB, runs, d, p, 100 * p / d))
    print("CPU per download, median: the proxy process %.0f ms; curl itself, direct, %.0f ms"
          % (1000 * statistics.median(proxy_cpu), 1000 * statistics.median(curl_cpu)))


if __name__ == "__main__":
    main()
