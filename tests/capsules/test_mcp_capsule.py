"""run_capsule over MCP (warrantd --stdio): a capsule under the policy's
read prefixes runs and its receipt records materials and products; paths
outside the prefixes and hostile capsules are tool errors, and the server
keeps serving.

usage: test_mcp_capsule.py WARRANT"""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "server"))
import mcpraw  # noqa: E402
from mcpraw import INIT, INITIALIZED  # noqa: E402

WARRANT = os.path.abspath(sys.argv[1])
SRC = os.environ.get("WARRANT_SRC", os.path.join(HERE, "..", ".."))
failures = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else ": " + str(detail)[:600]))
    if not cond:
        failures.append(name)


def call(i, args):
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "run_capsule", "arguments": args}}


def main():
    if not shutil.which("bwrap"):
        print("SKIP: bwrap is not installed")
        sys.exit(77)
    fx = mcpraw.Fixture()
    outside = tempfile.mkdtemp(prefix="capsule-outside-")
    try:
        # The capsule pack, confined to the fixture's directory: the capsule
        # work dir ($TMPDIR) and every output live there.
        text = open(os.path.join(SRC, "policies", "capsule.yaml")).read()
        for key in ("allowed_cwd_prefixes", "allowed_read_prefixes", "allowed_write_prefixes"):
            text = text.replace("%s: [/]" % key, "%s: [%s]" % (key, fx.tmp))
        open(fx.policy, "w").write(text)
        os.environ["TMPDIR"] = fx.tmp
        cap = os.path.join(fx.tmp, "primes.capsule")
        subprocess.run([WARRANT, "capsule", "pack", os.path.join(SRC, "examples", "capsules", "primes"), "-o", cap],
                       check=True, capture_output=True)
        far = os.path.join(outside, "primes.capsule")
        shutil.copy(cap, far)
        junk = os.path.join(fx.tmp, "junk.capsule")
        open(junk, "wb").write(b"\x1f\x8b not really")

        c = mcpraw.Stdio(fx)
        c.send(INIT)
        c.recv()
        c.send(INITIALIZED)

        out_dir = os.path.join(fx.tmp, "out")
        c.send(call(1, {"capsule_path": cap, "out_dir": out_dir}))
        r = c.recv(60)
        sc = r.get("result", {}).get("structuredContent", {})
        rec = sc.get("receipt", {})
        check("run_capsule succeeds", sc.get("status") == "success" and not r["result"].get("isError"), r)
        check("its receipt names the capsule, materials and products",
              rec.get("capsule", {}).get("name") == "primes" and len(rec.get("materials", [])) == 3
              and [p["path"] for p in rec.get("products", [])] == ["primes.tsv", "summary.json"], rec)
        check("the contract's actor is the client", rec.get("agent_id") == "tester", rec.get("agent_id"))
        check("the products are in out_dir", os.path.exists(os.path.join(out_dir, "primes.tsv")))

        c.send(call(2, {"capsule_path": far}))
        r = c.recv(30)
        check("a capsule outside the read prefixes is a tool error",
              r["result"].get("isError") and "allowed_read_prefixes" in r["result"]["content"][0]["text"], r)
        c.send(call(3, {"capsule_path": cap, "out_dir": os.path.join(outside, "out")}))
        r = c.recv(30)
        check("an out_dir outside the write prefixes is a tool error",
              r["result"].get("isError") and "allowed_write_prefixes" in r["result"]["content"][0]["text"], r)
        c.send(call(4, {"capsule_path": junk}))
        r = c.recv(30)
        check("a hostile capsule is a tool error",
              r["result"].get("isError") and "capsule refused" in r["result"]["content"][0]["text"], r)
        c.send(call(5, {"capsule_path": os.path.join(fx.tmp, "..", os.path.basename(outside), "primes.capsule")}))
        r = c.recv(30)
        check("a path climbing out with .. is refused", r["result"].get("isError"), r)
        c.send({"jsonrpc": "2.0", "id": 6, "method": "ping"})
        check("the server keeps serving", c.recv() == {"jsonrpc": "2.0", "id": 6, "result": {}})
        c.close()
    finally:
        if failures:
            print("kept", fx.tmp)
        else:
            fx.cleanup()
        shutil.rmtree(outside, ignore_errors=True)
    print("%d failure(s)" % len(failures))
    sys.exit(1 if failures else 0)


main()
