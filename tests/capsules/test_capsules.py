"""Capsules end to end through the real `warrant` CLI: deterministic packing,
hostile archives (written with Python's tarfile, as an attacker would),
tampering, signatures, runs in the real sandbox with materials and products
in the signed receipt, reproduction, policy refusals and approvals.

usage: test_capsules.py WARRANT"""
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile

WARRANT = os.path.abspath(sys.argv[1])
SRC = os.environ.get("WARRANT_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
SAMPLES = os.path.join(SRC, "examples", "capsules")
failures = []


def warrant(*args, env=None, user=None):
    cmd = [WARRANT, *args]
    if user is not None:
        cmd = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups", *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    return p.returncode, p.stdout, p.stderr


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else ": " + detail))
    if not cond:
        failures.append(name)


def expect(name, args, code, err_has=None, out_has=None, **kw):
    rc, out, err = warrant(*args, **kw)
    ok = rc == code and (err_has is None or err_has in err) and (out_has is None or out_has in out)
    # One line per error (style.md): never a trace or a multi-line dump.
    if rc != 0 and code != 0:
        ok = ok and len([l for l in err.splitlines() if l.startswith("warrant:")]) >= 1
    check(name, ok, "rc=%d stdout=%r stderr=%r" % (rc, out[-400:], err[-400:]))
    return out, err


def sha(data):
    return hashlib.sha256(data).hexdigest()


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ---- hostile archives, written member by member -----------------------------

def member(name, data=b"", kind=tarfile.REGTYPE, mode=0o644, **extra):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.size, ti.mtime = kind, mode, len(data) if kind == tarfile.REGTYPE else 0, 0
    for k, v in extra.items():
        setattr(ti, k, v)
    return ti, data


def manifest_for(files, **over):
    m = {"format": "warrant.capsule.v1", "name": "hostile", "version": "1", "entrypoint": ["true"],
         "files": [{"path": p, "size": len(d), "sha256": sha(d), "executable": False} for p, d in sorted(files.items())]}
    m.update(over)
    return canonical(m)


def write_tar(path, members):
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as t:
        for ti, data in members:
            t.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)


def raw_oversized(path):
    """A header claiming 2 GiB followed by a few blocks: the size alone must
    be refused, before anything is read or allocated."""
    import gzip
    m = json.loads(manifest_for({"big": b""}))
    m["files"][0]["size"] = 2 << 30
    m = canonical(m)
    head = tarfile.TarInfo("MANIFEST.json")
    head.size = len(m)
    big = tarfile.TarInfo("data/big")
    big.size = 2 << 30
    body = head.tobuf(format=tarfile.GNU_FORMAT) + m + b"\0" * (-len(m) % 512)
    body += big.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 4096
    with open(path, "wb") as f:
        f.write(gzip.compress(body))


def hostile_cases(tmp):
    ok_file = {"a.txt": b"hello\n"}
    good = [member("MANIFEST.json", manifest_for(ok_file)), member("data/a.txt", b"hello\n")]
    cases = {
        "symlink pointing out": ([member("MANIFEST.json", manifest_for(ok_file)), member("data/a.txt", b"hello\n"),
                                  member("data/evil", kind=tarfile.SYMTYPE, linkname="/etc/passwd")],
                                 "points outside the capsule"),
        "symlink climbing out": ([member("MANIFEST.json", manifest_for(ok_file)), member("data/a.txt", b"hello\n"),
                                  member("data/up", kind=tarfile.SYMTYPE, linkname="../../../etc/shadow")],
                                 "points outside the capsule"),
        "absolute member name": (good + [member("/etc/cron.d/evil", b"x")], "absolute or not normalised"),
        "dot-dot member name": (good + [member("data/../../evil", b"x")], "absolute or not normalised"),
        "device file": (good + [member("data/zz", kind=tarfile.CHRTYPE, devmajor=1, devminor=3)], "device file"),
        "hard link": (good + [member("data/zz", kind=tarfile.LNKTYPE, linkname="data/a.txt")], "hard link"),
        "directory entry": (good + [member("data/sub", kind=tarfile.DIRTYPE)], "directory entry"),
        "duplicate member": (good + [member("data/a.txt", b"hello\n")], "duplicate member"),
        "members out of order": ([member("MANIFEST.json", manifest_for({"b": b"2"})), member("data/b", b"2"),
                                  member("data/a", b"1")], "not in canonical (sorted) order"),
        "manifest names a missing file": ([member("MANIFEST.json", manifest_for({"a.txt": b"hello\n", "gone": b""})),
                                           member("data/a.txt", b"hello\n")],
                                          "gone: listed in the manifest but missing"),
        "manifest misses a present file": (good + [member("data/extra", b"sneaky")],
                                           "extra: in the capsule but not listed in the manifest"),
        "file differs from manifest": ([member("MANIFEST.json", manifest_for(ok_file)), member("data/a.txt", b"HELLO\n")],
                                       "does not match the manifest"),
        "size differs from manifest": ([member("MANIFEST.json", manifest_for(ok_file)), member("data/a.txt", b"hello!\n")],
                                       "the manifest says 6"),
        "setuid mode": ([member("MANIFEST.json", manifest_for(ok_file)), member("data/a.txt", b"hello\n", mode=0o4755)],
                        "is not 0644 or 0755"),
        "no manifest first": ([member("data/a.txt", b"hello\n"), member("zz/MANIFEST.json", manifest_for(ok_file))],
                              "not MANIFEST.json"),
        "non-canonical manifest": ([member("MANIFEST.json", json.dumps(json.loads(manifest_for(ok_file)), indent=1).encode()),
                                    member("data/a.txt", b"hello\n")], "not in canonical JSON form"),
        "manifest path with dot-dot": ([member("MANIFEST.json", manifest_for({"../x": b""}))],
                                       "is not a normalised relative path"),
    }
    for name, (members, phrase) in sorted(cases.items()):
        path = os.path.join(tmp, "hostile-%s.capsule" % name.replace(" ", "-"))
        write_tar(path, members)
        expect("verify refuses " + name, ["capsule", "verify", path], 1, err_has=phrase)
    huge = json.loads(manifest_for({"a": b"", "b": b"", "c": b"", "d": b"", "e": b""}))
    for f in huge["files"]:
        f["size"] = 1 << 30
    path = os.path.join(tmp, "huge-manifest.capsule")
    write_tar(path, [member("MANIFEST.json", canonical(huge))])
    expect("verify refuses a manifest promising more than the total limit", ["capsule", "verify", path], 1,
           err_has="in all")
    ctl = os.path.join(tmp, "control-name.capsule")
    write_tar(ctl, good + [member("data/b\x1b[2Jx", b"x")])
    out, err = expect("a control character in a member name is refused and shown escaped", ["capsule", "verify", ctl],
                      1, err_has="b\\x1b[2Jx")
    check("the error line holds no control character", all(ord(ch) >= 0x20 for ch in err.strip()), repr(err))
    big = os.path.join(tmp, "oversized.capsule")
    raw_oversized(big)
    expect("verify refuses an over-limit file by its header", ["capsule", "verify", big], 1, err_has="over the limit")
    junk = os.path.join(tmp, "junk.capsule")
    open(junk, "wb").write(b"not an archive at all\n" * 10)
    expect("verify refuses a file that is not a capsule", ["capsule", "verify", junk], 1)
    expect("verify of a missing file is bad input", ["capsule", "verify", os.path.join(tmp, "nope")], 2)
    # A run of a hostile capsule never starts: no receipt, nothing unpacked.
    path = os.path.join(tmp, "hostile-symlink-pointing-out.capsule")
    expect("run refuses a hostile capsule", ["capsule", "run", path, "--state-dir", os.path.join(tmp, "hstate")], 1,
           err_has="points outside the capsule")


def hostile_trees(tmp):
    base = os.path.join(tmp, "trees")
    os.mkdir(base)

    def tree(name, spec="name: t\nversion: '1'\nentrypoint: ['true']\n"):
        d = os.path.join(base, name)
        os.mkdir(d)
        open(os.path.join(d, "capsule.yaml"), "w").write(spec)
        return d

    d = tree("symlink-out")
    os.symlink("/etc/passwd", os.path.join(d, "passwd"))
    expect("pack refuses a symlink pointing out", ["capsule", "pack", d, "-o", d + ".capsule"], 1,
           err_has="points outside the capsule")
    d = tree("symlink-in")
    open(os.path.join(d, "real"), "w").write("x")
    os.symlink("real", os.path.join(d, "alias"))
    expect("pack refuses any symlink", ["capsule", "pack", d, "-o", d + ".capsule"], 1,
           err_has="capsules hold regular files only")
    d = tree("fifo")
    os.mkfifo(os.path.join(d, "pipe"))
    expect("pack refuses a FIFO", ["capsule", "pack", d, "-o", d + ".capsule"], 1, err_has="FIFO")
    d = tree("newline-name")
    open(os.path.join(d, "bad\nname"), "w").write("x")
    expect("pack refuses a control character in a name", ["capsule", "pack", d, "-o", d + ".capsule"], 1,
           err_has="not allowed in a capsule")
    d = tree("bad-spec", "name: t\nversion: 1.0\nentrypoint: ['true']\n")
    expect("pack refuses a spec that breaks the schema", ["capsule", "pack", d, "-o", d + ".capsule"], 1,
           err_has="version")
    d = tree("dup-step", "name: t\nversion: '1'\nentrypoint: ['true']\nsteps:\n  - {id: entrypoint, argv: ['true']}\n")
    expect("pack refuses a step id that repeats the entrypoint's", ["capsule", "pack", d, "-o", d + ".capsule"], 1,
           err_has="used twice")
    d = tree("dup-key", "name: t\nname: u\nversion: '1'\nentrypoint: ['true']\n")
    expect("pack refuses duplicate YAML keys", ["capsule", "pack", d, "-o", d + ".capsule"], 1, err_has="duplicate")
    for name in os.listdir(base):
        check("nothing written for refused tree " + name, not os.path.exists(os.path.join(base, name) + ".capsule"))


# ---- packing, signing, tampering ----------------------------------------------

def copy_scrambled(src, dst):
    """The same content with other mtimes, modes and order of creation."""
    shutil.copytree(src, dst)
    for root, dirs, files in os.walk(dst):
        for n in files + dirs:
            p = os.path.join(root, n)
            os.utime(p, (1234567890, 1234567890))
            if n in files:
                os.chmod(p, 0o600)


def packing(tmp):
    a, b = os.path.join(tmp, "a.capsule"), os.path.join(tmp, "b.capsule")
    expect("pack the primes sample", ["capsule", "pack", os.path.join(SAMPLES, "primes"), "-o", a], 0)
    other = os.path.join(tmp, "primes-copy")
    copy_scrambled(os.path.join(SAMPLES, "primes"), other)
    expect("pack a scrambled copy", ["capsule", "pack", other, "-o", b], 0)
    check("packing twice gives byte-identical files", open(a, "rb").read() == open(b, "rb").read())
    with open(a, "rb") as f:
        head = f.read(10)
    check("gzip header has no timestamp", head[:3] == b"\x1f\x8b\x08" and head[4:8] == b"\0\0\0\0", head.hex())
    with tarfile.open(a) as t:
        names = t.getnames()
        check("members sorted, manifest first", names == sorted(names) and names[0] == "MANIFEST.json", str(names))
        check("fixed owner, mtime and modes",
              all(m.uid == 0 and m.gid == 0 and m.mtime == 0 and m.uname == "" and m.mode in (0o644, 0o755)
                  and m.isreg() for m in t.getmembers()))
    out, _ = expect("verify the sample", ["capsule", "verify", a], 0)
    check("verify prints the capsule sha256", out.split()[0] == sha(open(a, "rb").read()))

    expect("keygen", ["keygen", "--out", os.path.join(tmp, "author")], 0)
    expect("keygen other", ["keygen", "--out", os.path.join(tmp, "other")], 0)
    s = os.path.join(tmp, "signed.capsule")
    expect("pack signed", ["capsule", "pack", os.path.join(SAMPLES, "primes"), "-o", s, "--sign",
                           os.path.join(tmp, "author.key")], 0)
    expect("signed verifies with its key", ["capsule", "verify", s, "--pubkey", os.path.join(tmp, "author.pub")], 0,
           err_has="(the trusted key)")
    expect("signed fails with another key", ["capsule", "verify", s, "--pubkey", os.path.join(tmp, "other.pub")], 1,
           err_has="not by the trusted key")
    expect("unsigned fails when a key is required", ["capsule", "verify", a, "--pubkey", os.path.join(tmp, "author.pub")],
           1, err_has="not signed")

    # Tampering: rewrite one member, keep the rest byte for byte.
    def rewrite(src, dst, change):
        with tarfile.open(src) as t:
            members = [(m, t.extractfile(m).read()) for m in t.getmembers()]
        with tarfile.open(dst, "w:gz", format=tarfile.PAX_FORMAT) as t:
            for m, data in members:
                data = change(m.name, data)
                m.size = len(data)
                t.addfile(m, io.BytesIO(data))

    t1 = os.path.join(tmp, "tampered-file.capsule")
    rewrite(s, t1, lambda n, d: d.replace(b"1000000", b"1000001") if n == "data/data/limits.txt" else d)
    expect("a tampered file fails verify", ["capsule", "verify", t1], 1, err_has="does not match the manifest")

    def bump(n, d):
        if n != "MANIFEST.json":
            return d
        m = json.loads(d)
        m["entrypoint"] = ["python3", "primes.py", "data/limits.txt", "/tmp"]
        return canonical(m)
    t2 = os.path.join(tmp, "tampered-manifest.capsule")
    rewrite(s, t2, bump)
    expect("a tampered manifest fails verify", ["capsule", "verify", t2], 1, err_has="signature does not verify")

    def resign_hash(n, d):
        if n == "MANIFEST.json":
            m = json.loads(d)
            m["files"][1]["sha256"] = "0" * 64
            return canonical(m)
        return d
    t3 = os.path.join(tmp, "tampered-hash.capsule")
    rewrite(a, t3, resign_hash)
    expect("an unsigned manifest with a changed hash fails", ["capsule", "verify", t3], 1,
           err_has="does not match the manifest")
    return a, s


# ---- running ----------------------------------------------------------------------

def receipt_of(out):
    return json.loads(out.splitlines()[0])


def pubkey(state, tmp):
    rc, out, _ = warrant("pubkey", "--state-dir", state)
    path = os.path.join(tmp, "server.pub")
    open(path, "w").write(out)
    return path


def file_sha(path):
    return sha(open(path, "rb").read())


def running(tmp, capsule, signed):
    state = os.path.join(tmp, "state")
    out_dir = os.path.join(tmp, "out")
    os.chmod(tmp, 0o755)  # the sandbox user must reach --out
    out, err = expect("run the primes sample", ["capsule", "run", capsule, "--state-dir", state, "--out", out_dir], 0)
    r = receipt_of(out)
    check("run status success", r["status"] == "success", json.dumps(r)[:400])
    pub = pubkey(state, tmp)
    rfile = os.path.join(tmp, "run-receipt.json")
    open(rfile, "w").write(out)
    expect("the capsule receipt verifies", ["verify", "receipt", rfile, "--pubkey", pub], 0)
    check("receipt names the capsule",
          r["capsule"] == {"name": "primes", "version": "1.0.0", "sha256": file_sha(capsule)}, str(r.get("capsule")))
    src = os.path.join(SAMPLES, "primes")
    mats = []
    for d, _, fs in os.walk(src):
        for f in fs:
            mats.append({"path": os.path.relpath(os.path.join(d, f), src), "sha256": file_sha(os.path.join(d, f))})
    mats.sort(key=lambda m: m["path"])
    check("materials are each input file's hash", r["materials"] == mats, str(r["materials"]))
    prods = [{"path": f, "sha256": file_sha(os.path.join(out_dir, f))} for f in sorted(os.listdir(out_dir))]
    check("products are each output file's hash", r["products"] == prods and len(prods) == 2, str(r["products"]))
    check("outputs are what the sample computes",
          "1000000\t78498\t999983" in open(os.path.join(out_dir, "primes.tsv")).read())

    expect("run refuses an output dir that is not empty",
           ["capsule", "run", capsule, "--state-dir", state, "--out", out_dir], 1, err_has="is not empty")

    # Reproduce on the same machine: a fresh private directory, same products.
    out, err = expect("the deterministic sample reproduces", ["reproduce", rfile, "--capsule", capsule,
                                                               "--state-dir", state], 0)
    check("reproduce prints reproduced", out.strip() == "reproduced", out)
    ex = os.path.join(tmp, "exported")
    warrant("receipts", "export", "--state-dir", state, "--dir", ex)
    rs = [json.load(open(os.path.join(ex, f))) for f in sorted(os.listdir(ex)) if f.endswith(".json")]
    rep = [x for x in rs if x.get("reproduces")]
    check("reproduce seals its own receipt pointing at the original",
          len(rep) == 1 and rep[0]["reproduces"] == r["execution_id"] and rep[0]["reproduced"] is True
          and rep[0]["products"] == r["products"], json.dumps(rep)[:300])
    expect("the chain with capsule receipts verifies", ["verify", "chain", "--state-dir", state, "--pubkey", pub], 0)

    expect("reproduce refuses another capsule's receipt", ["reproduce", rfile, "--capsule", signed,
                                                          "--state-dir", state], 1, err_has="not of this one")
    forged = json.loads(open(rfile).read())
    forged["products"][0]["sha256"] = "0" * 64
    ffile = os.path.join(tmp, "forged.json")
    open(ffile, "w").write(json.dumps(forged))
    expect("reproduce refuses a forged receipt", ["reproduce", ffile, "--capsule", capsule, "--state-dir", state], 2,
           err_has="signature")
    expect("a signed capsule runs with its trusted key",
           ["capsule", "run", signed, "--state-dir", state, "--pubkey", os.path.join(tmp, "author.pub")], 0)
    expect("an unsigned capsule is refused when a key is required",
           ["capsule", "run", capsule, "--state-dir", state, "--pubkey", os.path.join(tmp, "author.pub")], 1,
           err_has="not signed")
    return state, pub


def make_capsule(tmp, name, spec, files):
    d = os.path.join(tmp, "src-" + name)
    os.mkdir(d)
    open(os.path.join(d, "capsule.yaml"), "w").write(spec)
    for n, text in files.items():
        open(os.path.join(d, n), "w").write(text)
    path = os.path.join(tmp, name + ".capsule")
    expect("pack " + name, ["capsule", "pack", d, "-o", path], 0)
    return path


def nondeterministic(tmp, state):
    clock = make_capsule(tmp, "clock", "name: clock\nversion: '1'\nentrypoint: [python3, clock.py, '{out}']\n"
                         "outputs: [now.txt, fixed.txt]\n",
                         {"clock.py": "import sys, time\nopen(sys.argv[1] + '/now.txt', 'w').write(str(time.time_ns()))\n"
                                      "open(sys.argv[1] + '/fixed.txt', 'w').write('same')\n"
                                      "open(sys.argv[1] + '/x\\nreproduced', 'w').write(str(time.time_ns()))\n"})
    out, _ = expect("run a clock capsule", ["capsule", "run", clock, "--state-dir", state], 0)
    rfile = os.path.join(tmp, "clock-receipt.json")
    open(rfile, "w").write(out)
    out, _ = expect("a time-dependent capsule does not reproduce",
                    ["reproduce", rfile, "--capsule", clock, "--state-dir", state], 1)
    check("the differing outputs are named, the equal one is not",
          out.splitlines() == ["differs now.txt", "differs x\\x0areproduced"], out)


def refusals(tmp, state):
    esc = os.path.join(tmp, "escape.capsule")
    expect("pack the escape sample", ["capsule", "pack", os.path.join(SAMPLES, "escape"), "-o", esc], 0)
    markers = ["/etc/warrant-capsule-escape", "/var/tmp/warrant-capsule-escape", "/home/warrant-capsule-escape"]
    for m in markers:
        if os.path.exists(m):
            os.unlink(m)
    out, err = expect("the escape sample is denied by the capsule policy", ["capsule", "run", esc, "--state-dir", state],
                      1, err_has="NETWORK_EXCEEDS_POLICY")
    r = receipt_of(out)
    check("its receipt says blocked by policy, with the capsule named",
          r["status"] == "blocked" and r["reason_code"] == "NETWORK_EXCEEDS_POLICY" and r["capsule"]["name"] == "escape"
          and "products" not in r and len(r["materials"]) == 2, json.dumps(r)[:400])

    # The same code without the network request: it runs, and the sandbox
    # contains every attempt.
    src = os.path.join(tmp, "src-escape-quiet")
    shutil.copytree(os.path.join(SAMPLES, "escape"), src)
    spec = open(os.path.join(src, "capsule.yaml")).read().replace("network: {mode: full}", "network: {mode: deny}")
    open(os.path.join(src, "capsule.yaml"), "w").write(spec)
    quiet = os.path.join(tmp, "escape-quiet.capsule")
    expect("pack the escape code with network deny", ["capsule", "pack", src, "-o", quiet], 0)
    out_dir = os.path.join(tmp, "escape-out")
    out, err = expect("escape attempts fail in the sandbox",
                      ["capsule", "run", quiet, "--state-dir", state, "--out", out_dir], 1)
    r = receipt_of(out)
    report = open(os.path.join(out_dir, "report.txt")).read() if os.path.exists(os.path.join(out_dir, "report.txt")) else ""
    check("the receipt is failed, the report lists only refusals",
          r["status"] == "failed" and "WROTE" not in report and "CONNECTED" not in report and report.count("refused") == 5,
          report + json.dumps(r)[:300])
    check("nothing was written outside the output directory",
          not any(os.path.exists(m) for m in markers)
          and open(os.path.join(SAMPLES, "escape", "escape.py"), "rb").read() == open(
              os.path.join(src, "escape.py"), "rb").read()
          and r["products"] == [{"path": "report.txt", "sha256": file_sha(os.path.join(out_dir, "report.txt"))}],
          str(r.get("products")))

    hungry = make_capsule(tmp, "hungry", "name: hungry\nversion: '1'\nentrypoint: ['true']\nmemory_mb: 999999\n", {})
    out, err = expect("memory over the policy's maximum is refused with a receipt",
                      ["capsule", "run", hungry, "--state-dir", state], 1, err_has="allows at most 2048")
    check("that receipt is blocked", receipt_of(out)["status"] == "blocked")
    # memory_mb narrows the sandbox: the same allocation fails under 128 MB
    # and succeeds under 1024 MB (both within the pack's 2048).
    for mb, status in ((128, "failed"), (1024, "success")):
        hog = make_capsule(tmp, "hog%d" % mb, "name: hog\nversion: '1'\nentrypoint: [python3, hog.py]\n"
                           "memory_mb: %d\n" % mb, {"hog.py": "b = bytearray(512 << 20)\n"})
        rc, out, err = warrant("capsule", "run", hog, "--state-dir", state)
        check("memory_mb %d: a 512 MiB allocation is %s" % (mb, status),
              out and receipt_of(out)["status"] == status, err[-300:])
    shell = make_capsule(tmp, "shell", "name: shell\nversion: '1'\nentrypoint: [sh, -c, 'id']\n", {})
    out, err = expect("a shell entrypoint is denied", ["capsule", "run", shell, "--state-dir", state], 1,
                      err_has="COMMAND_NOT_ALLOWED")


def approvals(tmp, capsule):
    """Under a policy that wants a human for writes, the capsule's contract
    queues a request; once approved, the same run (same contract) proceeds."""
    pem = open(os.path.join(tmp, "author.pub")).read()
    policy = os.path.join(tmp, "approve.yaml")
    text = open(os.path.join(SRC, "policies", "capsule.yaml")).read()
    text = text.replace("name: capsule", "name: capsule-approve").replace(
        "manual_approval_for_classified_effect_types: []", "manual_approval_for_classified_effect_types: [transform_local]")
    text += ("approvers:\n  - identity: alice@example.com\n    public_key: %s\n"
             "    may_approve: {risk_classes: [medium], effect_types: [transform_local]}\n" % json.dumps(pem))
    open(policy, "w").write(text)
    state = os.path.join(tmp, "astate")
    out_dir = os.path.join(tmp, "aout")
    args = ["capsule", "run", capsule, "--policy", policy, "--state-dir", state, "--out", out_dir]
    out, err = expect("a capsule needing approval is blocked", args, 1, err_has="approval pending")
    rid = [w for w in err.replace("`", " ").split() if w.startswith("apr_")]
    check("the request id is named", bool(rid), err)
    if not rid:
        return
    expect("approve the request", ["approvals", "approve", rid[0], "--key", os.path.join(tmp, "author.key"),
                                    "--identity", "alice@example.com", "--state-dir", state], 0)
    out, err = expect("after approval the same capsule run proceeds", args, 0)
    r = receipt_of(out)
    check("the receipt records the approval", len(r["approvals"]) == 1 and r["status"] == "success")


def unprivileged(tmp, capsule):
    """The common case: warrant run by an ordinary user, the sandbox as that user."""
    if os.geteuid() != 0:
        return
    home = os.path.join(tmp, "nobody")
    os.mkdir(home)
    os.chown(home, 65534, 65534)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "TMPDIR": home}
    cap = os.path.join(home, "p.capsule")
    shutil.copy(capsule, cap)
    os.chown(cap, 65534, 65534)
    rc, out, err = warrant("capsule", "run", cap, "--state-dir", os.path.join(home, "state"), env=env, user=65534)
    if rc != 0 and ("setting up uid map" in err or "No permissions to create new namespace" in err
                    or "Operation not permitted" in err):
        print("skip unprivileged run: no user namespaces here (%s)" % err.strip()[-200:])
        return
    check("an unprivileged user runs the capsule", rc == 0, "rc=%d %s" % (rc, err[-400:]))
    if rc == 0:
        rfile = os.path.join(home, "r.json")
        open(rfile, "w").write(out)
        os.chown(rfile, 65534, 65534)
        rc, out, err = warrant("reproduce", rfile, "--capsule", cap, "--state-dir", os.path.join(home, "state"),
                               env=env, user=65534)
        check("and reproduces it", rc == 0 and out.strip() == "reproduced", out + err)
        work = os.path.join(home, "warrant-capsules-65534")
        check("its work dir is private", stat.S_IMODE(os.stat(work).st_mode) == 0o700)


def main():
    if not shutil.which("bwrap"):
        print("SKIP: bwrap is not installed")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="capsules-")
    os.environ["TMPDIR"] = tmp
    try:
        hostile_cases(tmp)
        hostile_trees(tmp)
        capsule, signed = packing(tmp)
        state, _ = running(tmp, capsule, signed)
        nondeterministic(tmp, state)
        refusals(tmp, state)
        approvals(tmp, capsule)
        unprivileged(tmp, capsule)
    finally:
        if failures:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("%d failure(s)" % len(failures))
    sys.exit(1 if failures else 0)


main()
