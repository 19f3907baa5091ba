#!/usr/bin/env python3
"""The receipt log as a transparency log (issue 15), against real state dirs.

- RFC 9162 by an independent Python implementation (written from the RFC's
  definitions of MTH, PATH and PROOF and its verification algorithms): for
  every tree size 1..300 of a real store, the C root, every inclusion proof
  and every consistency proof are the Python ones (compared by digest, and
  in full for some sizes, which the Python verifier then accepts).
- With a checkpoint, `warrant verify chain --dir` rejects a truncated tail,
  one deleted receipt, two swapped, one edited, and a forked history (the
  same key, another history), each naming what it found; consistency
  between checkpoints of a forked history is refused, by proof and by dir.
- verify inclusion / consistency accept real proofs, refuse wrong ones.
- A witness cosignature is required by --witness and checked.
- docs/verify_checkpoint.py (standard library + cryptography) accepts the
  export and rejects a truncated one.
- doctor: all ok on a clean dir; a damaged tree hash and a loose key mode
  are findings (exit 1).
- SIGKILL while receipts are appended: the tree stays the tree of the
  receipts (verify chain --state-dir compares every stored node), and every
  receipt printed (durable) is in it.
- warrantd --checkpoint-interval 1 signs checkpoints by itself while the
  log grows (receipts sealed by another process meanwhile).

usage: tlog.py RECEIPT_DRIVER WARRANT_CLI VERIFY_CHECKPOINT_PY WARRANTD
"""
import base64
import functools
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

DRIVER, WARRANT, PYVERIFY, WARRANTD = (os.path.abspath(a) for a in sys.argv[1:5])
SIZES = 300
FULL = (1, 2, 3, 4, 5, 7, 8, 9, 127, 128, 129, 255, 256, 257, 300)


def ok(msg):
    print("ok - " + msg)


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def run(cmd, code=0, err=None, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != code or (err and err not in p.stderr):
        fail("%s: exit %d (want %d), stderr %r (want %r)" % (" ".join(cmd), p.returncode, code, p.stderr, err))
    return p.stdout


def warrant(*args, code=0, err=None):
    return run([WARRANT, *args], code, err)


# ---- RFC 9162 §2.1, independently ---------------------------------------------

def H(b):
    return hashlib.sha256(b).digest()


class Tree:
    def __init__(self, leaves):
        self.leaves = leaves

    @functools.lru_cache(maxsize=None)
    def mth(self, lo, hi):
        n = hi - lo
        if n == 0:
            return H(b"")
        if n == 1:
            return H(b"\x00" + self.leaves[lo])
        k = 1 << ((n - 1).bit_length() - 1)  # largest power of two < n
        return H(b"\x01" + self.mth(lo, lo + k) + self.mth(lo + k, hi))

    def path(self, m, lo, hi):  # §2.1.3.1
        n = hi - lo
        if n == 1:
            return []
        k = 1 << ((n - 1).bit_length() - 1)
        if m < k:
            return self.path(m, lo, lo + k) + [self.mth(lo + k, hi)]
        return self.path(m - k, lo + k, hi) + [self.mth(lo, lo + k)]

    def subproof(self, m, lo, hi, b):  # §2.1.4.1
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            return self.subproof(m, lo, lo + k, b) + [self.mth(lo + k, hi)]
        return self.subproof(m - k, lo + k, hi, False) + [self.mth(lo, lo + k)]

    def proof(self, m, n):
        return [] if m == n else self.subproof(m, 0, n, True)


def verify_inclusion(leaf_hash, index, size, path, root):  # §2.1.3.2
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = H(b"\x01" + p + r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = H(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_hash, second_hash, path):  # §2.1.4.2
    if first == second:
        return not path and first_hash == second_hash
    if not path:
        return False
    if first & (first - 1) == 0:
        path = [first_hash] + path
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = H(b"\x01" + c + fr)
            sr = H(b"\x01" + c + sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = H(b"\x01" + sr + c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


def digest(proofs):
    h = hashlib.sha256()
    for p in proofs:
        h.update(bytes([len(p)]) + b"".join(p))
    return h.hexdigest()


def rfc9162_against_c(tmp):
    state = os.path.join(tmp, "big")
    run([DRIVER, "seal", state, str(SIZES)])
    warrant("receipts", "export", "--state-dir", state, "--dir", os.path.join(tmp, "big-out"))
    leaves = [open(os.path.join(tmp, "big-out", "%06d.json" % i), "rb").read() for i in range(1, SIZES + 1)]
    t = Tree(tuple(leaves))
    out = run([DRIVER, "proofs", state, *map(str, FULL)])
    sizes = 0
    for line in out.splitlines():
        f = line.split(" ")
        if f[0] in ("I", "C"):
            n, a = int(f[1]), int(f[2])
            hashes = [bytes.fromhex(x) for x in f[3].split(",")] if len(f) > 3 and f[3] else []
            if f[0] == "I":
                if hashes != t.path(a, 0, n) or not verify_inclusion(H(b"\x00" + leaves[a]), a, n, hashes, t.mth(0, n)):
                    fail("inclusion proof of leaf %d in size %d differs or does not verify" % (a, n))
            elif hashes != t.proof(a, n) or not verify_consistency(a, n, t.mth(0, a), t.mth(0, n), hashes):
                fail("consistency proof %d -> %d differs or does not verify" % (a, n))
            continue
        n = int(f[0])
        if f[1] != t.mth(0, n).hex():
            fail("root of size %d: C %s, Python %s" % (n, f[1], t.mth(0, n).hex()))
        if f[2] != digest(t.path(i, 0, n) for i in range(n)):
            fail("inclusion proofs of size %d differ from the Python ones" % n)
        if f[3] != digest(t.proof(m, n) for m in range(1, n + 1)):
            fail("consistency proofs of size %d differ from the Python ones" % n)
        sizes += 1
    if sizes != SIZES:
        fail("the driver reported %d sizes, not %d" % (sizes, SIZES))
    # A wrong proof is refused by the Python verifier too (the C one is checked by the driver).
    p = t.path(5, 0, 300)
    p[2] = H(p[2])
    if verify_inclusion(H(b"\x00" + leaves[5]), 5, 300, p, t.mth(0, 300)):
        fail("python verifier accepted a tampered proof")
    ok("RFC 9162: roots, all inclusion and consistency proofs for sizes 1..%d equal an independent Python "
       "implementation, and verify (tampered twins fail) in C and Python" % SIZES)


# ---- the CLI with checkpoints ------------------------------------------------------

def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def checkpoints(tmp):
    os.chdir(tmp)
    run([DRIVER, "seal", "s", "8"])
    open("pub", "w").write(warrant("pubkey", "--state-dir", "s"))
    out = json.loads(warrant("receipts", "export", "--state-dir", "s", "--dir", "x"))
    if out != {"exported": 8, "dir": "x", "checkpoint": "checkpoint"}:
        fail("export: %r" % out)
    cp = open("x/checkpoint").read()
    lines = cp.split("\n")
    if lines[1] != "8" or lines[3] != "" or not lines[4].startswith("\u2014 warrant/") or lines[0] != lines[4].split()[1]:
        fail("checkpoint format: %r" % cp)
    if warrant("checkpoint", "--state-dir", "s") != cp:
        fail("warrant checkpoint does not print the latest checkpoint")
    out = json.loads(warrant("verify", "chain", "--dir", "x", "--pubkey", "pub", "--checkpoint", "x/checkpoint"))
    if out != {"valid": True, "receipts": 8, "checkpoint_size": 8}:
        fail("verify chain --checkpoint: %r" % out)
    run([sys.executable, PYVERIFY, "pub", "x"])

    def case(name, change, err):
        shutil.copytree("x", name)
        change(name)
        warrant("verify", "chain", "--dir", name, "--pubkey", "pub", "--checkpoint", "x/checkpoint", code=1, err=err)

    def truncate(d):
        os.unlink(d + "/000008.json")
        os.unlink(d + "/000007.json")
    case("cut", truncate, "seq 7: missing: the checkpoint covers 8 receipts but the chain ends at seq 6 (truncated)")
    # Without the checkpoint, the cut chain still verifies: the reason for checkpoints.
    warrant("verify", "chain", "--dir", "cut", "--pubkey", "pub")
    run([sys.executable, PYVERIFY, "pub", "cut", "x/checkpoint"], code=1, err="No such file")
    case("deleted", lambda d: os.unlink(d + "/000003.json"), "seq 3: gap: seq 3 is missing")

    def swap(d):
        os.rename(d + "/000002.json", d + "/t")
        os.rename(d + "/000005.json", d + "/000002.json")
        os.rename(d + "/t", d + "/000005.json")
    case("swapped", swap, "seq 5: reordered: found in place of seq 2")

    def edit(d):
        data = open(d + "/000004.json", "rb").read().replace(b'"status":"success"', b'"status":"failed"')
        open(d + "/000004.json", "wb").write(data)
    case("edited", edit, "seq 4: altered")

    # A fork: the same key signs another history of the same length (an
    # operator rewriting the log). Every receipt and link is valid.
    os.mkdir("f", 0o700)
    shutil.copy("s/receipt-signing.key", "f/")
    run([DRIVER, "seal", "f", "8"])
    warrant("receipts", "export", "--state-dir", "f", "--dir", "fx")
    warrant("verify", "chain", "--dir", "fx", "--pubkey", "pub")
    warrant("verify", "chain", "--dir", "fx", "--pubkey", "pub", "--checkpoint", "x/checkpoint", code=1,
            err="seq 1..8: forked")
    run([sys.executable, PYVERIFY, "pub", "fx", "x/checkpoint"], code=1, err="do not hash to the checkpoint's root")
    ok("verify chain --checkpoint: truncated tail, deleted, swapped, edited and forked histories each rejected "
       "with the seq; the independent script agrees on the fork")

    # Growth: consistency by proof and by dir, inclusion.
    run([DRIVER, "seal", "s", "5"])
    open("cp13", "w").write(warrant("checkpoint", "--state-dir", "s"))
    open("cons", "w").write(warrant("checkpoint", "proof", "--state-dir", "s", "--old", "8"))
    out = json.loads(warrant("verify", "consistency", "x/checkpoint", "cp13", "--pubkey", "pub", "--proof", "cons"))
    if out != {"valid": True, "old_size": 8, "tree_size": 13}:
        fail("verify consistency: %r" % out)
    warrant("receipts", "export", "--state-dir", "s", "--dir", "x13")
    warrant("verify", "consistency", "x/checkpoint", "cp13", "--pubkey", "pub", "--dir", "x13")
    warrant("verify", "consistency", "cp13", "x/checkpoint", "--pubkey", "pub", "--dir", "x13", code=1,
            err="the log shrank")
    warrant("verify", "consistency", "cp13", "cp13", "--pubkey", "pub")
    warrant("verify", "consistency", "x/checkpoint", "cp13", "--pubkey", "pub", code=1, err="no hashes")
    # The fork grows too; its checkpoint does not extend the original one.
    run([DRIVER, "seal", "f", "5"])
    open("fcp13", "w").write(warrant("checkpoint", "--state-dir", "f"))
    open("fcons", "w").write(warrant("checkpoint", "proof", "--state-dir", "f", "--old", "8"))
    warrant("verify", "consistency", "x/checkpoint", "fcp13", "--pubkey", "pub", "--proof", "fcons", code=1,
            err="does not extend")
    warrant("receipts", "export", "--state-dir", "f", "--dir", "fx13")
    warrant("verify", "consistency", "x/checkpoint", "fcp13", "--pubkey", "pub", "--dir", "fx13", code=1,
            err="forked")
    r = json.load(open("x13/000006.json"))
    open("incl", "w").write(warrant("checkpoint", "proof", "--state-dir", "s", "--execution", r["execution_id"]))
    out = json.loads(warrant("verify", "inclusion", "x13/000006.json", "--proof", "incl", "--checkpoint", "cp13",
                             "--pubkey", "pub"))
    if out != {"valid": True, "seq": 6, "tree_size": 13}:
        fail("verify inclusion: %r" % out)
    warrant("verify", "inclusion", "x13/000007.json", "--proof", "incl", "--checkpoint", "cp13", "--pubkey", "pub",
            code=1, err="the proof is for leaf 5")
    warrant("verify", "inclusion", "fx13/000006.json", "--proof", "incl", "--checkpoint", "cp13", "--pubkey", "pub",
            code=1, err="does not lead to the checkpoint's root")
    warrant("verify", "inclusion", "x13/000006.json", "--proof", "incl", "--checkpoint", "fcp13", "--pubkey", "pub",
            code=1, err="does not lead to the checkpoint's root")
    proof = json.load(open("incl"))
    proof["hashes"][1] = base64.b64encode(H(b"x")).decode()
    open("bad-incl", "w").write(json.dumps(proof))
    warrant("verify", "inclusion", "x13/000006.json", "--proof", "bad-incl", "--checkpoint", "cp13", "--pubkey", "pub",
            code=1, err="inclusion proof")
    ok("verify consistency (proof and dir) and inclusion accept real proofs; a forked, shrunk or tampered one "
       "is refused")

    # Witness cosignature.
    warrant("keygen", "--out", "wit")
    open("cp13w", "w").write(warrant("checkpoint", "cosign", "cp13", "--key", "wit.key", "--pubkey", "pub"))
    w = open("cp13w").read()
    if not w.startswith(open("cp13").read()) or not w.split("\n")[-2].startswith("\u2014 warrant-witness/"):
        fail("cosigned checkpoint: %r" % w)
    warrant("verify", "chain", "--dir", "x13", "--pubkey", "pub", "--checkpoint", "cp13w", "--witness", "wit.pub")
    warrant("verify", "chain", "--dir", "x13", "--pubkey", "pub", "--checkpoint", "cp13", "--witness", "wit.pub",
            code=1, err="no cosignature by the witness")
    warrant("checkpoint", "cosign", "fcp13", "--key", "wit.key", "--pubkey", "wit.pub", code=1,
            err="not of this key's log")
    # A witness that holds the last checkpoint it cosigned refuses a fork, accepts growth.
    warrant("checkpoint", "cosign", "cp13", "--key", "wit.key", "--pubkey", "pub", "--checkpoint", "x/checkpoint",
            "--proof", "cons")
    warrant("checkpoint", "cosign", "fcp13", "--key", "wit.key", "--pubkey", "pub", "--checkpoint", "x/checkpoint",
            "--proof", "fcons", code=1, err="refusing to cosign fcp13: it does not extend x/checkpoint")
    lines = w.split("\n")
    blob = bytearray(base64.b64decode(lines[-2].split(" ")[2]))
    blob[5] ^= 1  # the timestamp is signed
    lines[-2] = " ".join(lines[-2].split(" ")[:2] + [base64.b64encode(bytes(blob)).decode()])
    open("cp13w-bad", "w").write("\n".join(lines))
    warrant("verify", "chain", "--dir", "x13", "--pubkey", "pub", "--checkpoint", "cp13w-bad", "--witness", "wit.pub",
            code=1, err="does not verify")
    run([sys.executable, PYVERIFY, "pub", "x13", "cp13w"])  # other signatures are ignored, as signed-note says
    forged = open("cp13").read().replace("\n13\n", "\n12\n")
    open("forged", "w").write(forged)
    warrant("verify", "chain", "--dir", "x13", "--pubkey", "pub", "--checkpoint", "forged", code=1,
            err="does not verify")
    ok("witness: cosign checks the log's signature; --witness requires a valid cosignature; an edited note fails")

    # doctor
    out = warrant("doctor", "--state-dir", "s")
    if [l.split()[0] for l in out.splitlines()] != ["ok"] * 5:
        fail("doctor on a clean dir: %r" % out)
    shutil.copytree("s", "s-tree")
    db = sqlite3.connect("s-tree/warrant.db")
    db.execute("UPDATE tlog_hashes SET hash = zeroblob(32) WHERE id = 5")  # level 1, index 1 (hash_id)
    db.commit()
    db.close()
    out = warrant("doctor", "--state-dir", "s-tree", code=1)
    if "FAIL  chain        tree: the stored Merkle tree differs from the tree of the receipts at level 1, index 1" \
            not in out:
        fail("doctor on a damaged tree: %r" % out)
    os.chmod("s-tree/receipt-signing.key", 0o644)
    out = warrant("doctor", "--state-dir", "s-tree", code=1)
    if "FAIL  key" not in out:
        fail("doctor on a loose key: %r" % out)
    # Recovery as documented: the tree is derived data, rebuilt from the receipts on open.
    os.chmod("s-tree/receipt-signing.key", 0o600)
    db = sqlite3.connect("s-tree/warrant.db")
    db.execute("DELETE FROM tlog_hashes")
    db.commit()
    db.close()
    warrant("doctor", "--state-dir", "s-tree")
    ok("doctor: five ok lines on a clean state dir; a damaged tree hash and a 0644 key are findings, exit 1; "
       "a deleted tree is rebuilt on open and matches the stored checkpoints")


def sigkill_appends(tmp, rounds=15):
    import random
    seed = int(os.environ.get("WARRANT_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    state, pub = os.path.join(tmp, "k"), os.path.join(tmp, "k.pub")
    printed = set(run([DRIVER, "seal", state, "1"]).encode().split(b"\n")[:-1])
    open(pub, "w").write(warrant("pubkey", "--state-dir", state))
    kills = 0
    for _ in range(rounds):
        p = subprocess.Popen([DRIVER, "seal", state, "100000"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.02, 0.3))
        p.kill()
        out, _ = p.communicate()
        kills += p.returncode == -9
        # The last line may be cut mid-write; complete lines were durable before printing.
        printed.update(out.split(b"\n")[:-1])
        warrant("verify", "chain", "--state-dir", state, "--pubkey", pub)
    out = json.loads(warrant("verify", "chain", "--state-dir", state, "--pubkey", pub))
    warrant("receipts", "export", "--state-dir", state, "--dir", os.path.join(tmp, "kx"))
    stored = {open(os.path.join(tmp, "kx", n), "rb").read() for n in os.listdir(os.path.join(tmp, "kx"))
              if n.endswith(".json")}
    if not printed <= stored:
        fail("seed %d: %d printed receipts are not in the store" % (seed, len(printed - stored)))
    if kills < rounds // 2:
        fail("seed %d: only %d of %d sealers were killed while running" % (seed, kills, rounds))
    run([sys.executable, PYVERIFY, pub, os.path.join(tmp, "kx")])
    ok("SIGKILL during appends (%d kills, %d receipts, seed %d): chain, tree and checkpoints agree, every durable "
       "receipt is there" % (kills, out["receipts"], seed))


def stored_sizes(state):
    db = sqlite3.connect(os.path.join(state, "warrant.db"))
    sizes = [r[0] for r in db.execute("SELECT tree_size FROM checkpoints ORDER BY tree_size")]
    db.close()
    return sizes


def periodic(tmp):
    state = os.path.join(tmp, "d")
    run([DRIVER, "seal", state, "3"])
    d = subprocess.Popen([WARRANTD, "--stdio", "--state-dir", state, "--checkpoint-interval", "1"],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def wait_for(size):
            end = time.monotonic() + 10
            while size not in stored_sizes(state):
                if time.monotonic() > end or d.poll() is not None:
                    fail("warrantd published no checkpoint of size %d (have %r)" % (size, stored_sizes(state)))
                time.sleep(0.1)
        wait_for(3)
        run([DRIVER, "seal", state, "4"])  # another process appends while warrantd runs
        wait_for(7)
    finally:
        d.stdin.close()
        d.wait(timeout=20)
    if stored_sizes(state) != [3, 7]:
        fail("checkpoints %r: one per growth, none while the log stood still" % stored_sizes(state))
    ok("warrantd --checkpoint-interval 1 signs a checkpoint when the log grew, and only then")


tmp = tempfile.mkdtemp(prefix="wr-tlog-")
try:
    rfc9162_against_c(tmp)
    checkpoints(tmp)
    periodic(tmp)
    sigkill_appends(tmp)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
