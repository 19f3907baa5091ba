#!/usr/bin/env python3
"""warrant keygen | pubkey | receipts list|export | verify receipt|chain|bundle
| export, end to end on a state dir made by the receipts test driver, and the
tampering an auditor must catch: a flipped byte in every file of a bundle
(also with the manifest rewritten, also by an insider holding the server
key), a receipt deleted from the middle of a chain, two swapped, a
duplicate, and receipts re-signed with another key. Each must be rejected
(exit 1) with a precise message.

usage: cli.py RECEIPT_DRIVER WARRANT_CLI
"""
import base64
import hashlib
import io
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tarfile
import tempfile

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DRIVER, WARRANT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
count = 0


def ok(msg):
    global count
    count += 1
    print("ok %d - %s" % (count, msg))


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def warrant(*args, code=0, err=None):
    r = subprocess.run([WARRANT, *args], capture_output=True)
    stderr = r.stderr.decode()
    if r.returncode != code or (err and err not in stderr):
        fail("warrant %s: exit %d (want %d), stderr %r (want %r)" % (" ".join(args), r.returncode, code, stderr, err))
    if code and len(stderr.strip().splitlines()) != 1:
        fail("warrant %s: error is not one line: %r" % (" ".join(args), stderr))
    return r.stdout.decode()


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def resign(receipt, key):
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    kid = hashlib.sha256(raw).hexdigest()[:16]
    receipt["signing_key_id"] = kid
    receipt["signature"] = {"algorithm": "ed25519", "key_id": kid, "signed_at": "2026-11-22T00:00:00.000Z"}
    receipt["signature"]["signature"] = base64.b64encode(key.sign(canonical(receipt))).decode()
    return receipt


tmp = tempfile.mkdtemp(prefix="wr-cli-")
try:
    os.chdir(tmp)
    subprocess.run([DRIVER, "fixture", "state"], check=True, capture_output=True)
    subprocess.run([DRIVER, "seal", "state", "4"], check=True, capture_output=True)

    # ---- keygen ----
    out = json.loads(warrant("keygen", "--out", "alice"))
    for path in ("alice.key", "alice.pub"):
        subprocess.run(["openssl", "pkey", "-pubin" if path.endswith(".pub") else "-noout", "-in", path, "-noout"],
                       check=True, capture_output=True)
    if stat.S_IMODE(os.stat("alice.key").st_mode) != 0o600:
        fail("alice.key mode %o" % stat.S_IMODE(os.stat("alice.key").st_mode))
    pub = serialization.load_pem_public_key(open("alice.pub", "rb").read())
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if out["key_id"] != hashlib.sha256(raw).hexdigest()[:16]:
        fail("key_id %s" % out["key_id"])
    warrant("keygen", "--out", "alice", code=2, err="already exists")
    warrant("keygen", code=2, err="usage")
    ok("keygen writes PEM files openssl reads, key 0600, key_id = sha256(pk)[:16]; refuses to overwrite")

    # ---- pubkey, list, export ----
    pem = warrant("pubkey", "--state-dir", "state")
    if pem != open("state/receipt-signing.pub").read() or not pem.startswith("-----BEGIN PUBLIC KEY-----"):
        fail("pubkey output %r" % pem)
    open("server.pub", "w").write(pem)
    warrant("pubkey", "--state-dir", "nowhere", code=2, err="no receipt-signing key")
    ok("pubkey prints the state dir's PEM public key")

    lines = warrant("receipts", "list", "--state-dir", "state").splitlines()
    if len(lines) != 6 or lines[0] != "1\texe_fixture_run\tsuccess\tcontract_driver" or \
            not lines[1].startswith("2\texe_fixture_blocked\tblocked\t"):
        fail("receipts list: %r" % lines)
    js = [json.loads(l) for l in warrant("receipts", "list", "--json", "--state-dir", "state").splitlines()]
    if [j["seq"] for j in js] != [1, 2, 3, 4, 5, 6] or js[1]["status"] != "blocked":
        fail("receipts list --json: %r" % js)
    warrant("receipts", "list", "--state-dir", "nowhere", code=2, err="no warrant state")
    if os.path.exists("nowhere"):
        fail("a read-only command created a state dir")
    warrant("receipts", "frobnicate", "--state-dir", "state", code=2, err="usage")
    ok("receipts list: one line per receipt (seq, execution_id, status, contract_id), --json lines")

    out = json.loads(warrant("receipts", "export", "--state-dir", "state", "--dir", "chain"))
    names = sorted(os.listdir("chain"))
    os.rename("chain/checkpoint", "checkpoint")  # tlog.py checks it; here only the receipts
    if out["exported"] != 6 or names != ["%06d.json" % i for i in range(1, 7)] + ["checkpoint"]:
        fail("receipts export: %r %r" % (out, names))
    prev = "0" * 64
    for n in names[:-1]:
        data = open("chain/" + n, "rb").read()
        r = json.loads(data)
        if data != canonical(r) or r["prev_receipt_sha256"] != prev:
            fail("%s is not canonical or not linked" % n)
        prev = hashlib.sha256(data).hexdigest()
    ok("receipts export: one canonical file per receipt named by seq; each file's sha256 is the next link")

    # ---- verify receipt / chain ----
    out = json.loads(warrant("verify", "receipt", "chain/000002.json", "--pubkey", "server.pub"))
    if out != {"valid": True, "execution_id": "exe_fixture_blocked", "status": "blocked", "seq": 2,
               "signing_key_id": out["signing_key_id"]}:
        fail("verify receipt: %r" % out)
    warrant("verify", "receipt", "chain/000002.json", "--pubkey", "alice.pub", code=1, err="not by the given public key")
    warrant("verify", "receipt", "chain/000002.json", code=2, err="--pubkey PUB is required")
    warrant("verify", "receipt", "missing.json", "--pubkey", "server.pub", code=2)
    open("garbage.json", "w").write('{"seq": 1,')
    warrant("verify", "receipt", "garbage.json", "--pubkey", "server.pub", code=1)
    for args in (["--dir", "chain"], ["--state-dir", "state"]):
        out = json.loads(warrant("verify", "chain", *args, "--pubkey", "server.pub"))
        if out != {"valid": True, "receipts": 6}:
            fail("verify chain %r: %r" % (args, out))
    warrant("verify", "chain", "--dir", "chain", "--state-dir", "state", "--pubkey", "server.pub", code=2, err="usage")
    ok("verify receipt and verify chain (--dir and --state-dir) accept the untouched data, exit 2 on bad usage")

    def chain_case(name, change, err, code=1):
        shutil.copytree("chain", name)
        change(name)
        warrant("verify", "chain", "--dir", name, "--pubkey", "server.pub", code=code, err=err)

    chain_case("deleted", lambda d: os.unlink(d + "/000003.json"), "seq 3: gap: seq 3 is missing (seq 4 follows seq 2)")

    def swap(d):
        os.rename(d + "/000002.json", d + "/x")
        os.rename(d + "/000004.json", d + "/000002.json")
        os.rename(d + "/x", d + "/000004.json")
    chain_case("swapped", swap, "seq 4: reordered: found in place of seq 2 (000002.json)")
    chain_case("duplicate", lambda d: shutil.copy(d + "/000004.json", d + "/000004.copy.json"),
               "seq 4: duplicate seq (000004.json repeats seq 4)")

    other = Ed25519PrivateKey.generate()

    def resign_third(d):
        r = json.load(open(d + "/000003.json"))
        r["exit_code"] = 9
        open(d + "/000003.json", "wb").write(canonical(resign(r, other)))
    chain_case("resigned", resign_third, "seq 3: altered: /signature/key_id: signed by key")

    def resign_all(d):
        prev = "0" * 64
        for n in sorted(os.listdir(d)):
            r = json.load(open(d + "/" + n))
            r["prev_receipt_sha256"] = prev
            data = canonical(resign(r, other))
            open(d + "/" + n, "wb").write(data)
            prev = hashlib.sha256(data).hexdigest()
    chain_case("forged", resign_all, "seq 1: altered: /signature/key_id: signed by key", code=1)

    def flip(d):
        data = bytearray(open(d + "/000005.json", "rb").read())
        data[data.index(b"agent-driver") + 3] ^= 0x01
        open(d + "/000005.json", "wb").write(data)
    chain_case("flipped", flip, "seq 5: altered: /signature/signature: signature does not verify")
    ok("verify chain --dir: deletion, swap, duplicate, re-signing (one or all) and a flipped byte each rejected")

    def store_case(name, stmt, err):
        shutil.copytree("state", name)
        db = sqlite3.connect(name + "/warrant.db")
        db.execute(stmt)
        db.commit()
        db.close()
        warrant("verify", "chain", "--state-dir", name, "--pubkey", "server.pub", code=1, err=err)

    store_case("s-deleted", "DELETE FROM receipts WHERE seq = 3", "seq 3: gap: seq 3 is missing")
    store_case("s-swapped", "UPDATE receipts SET json = CASE seq WHEN 2 THEN (SELECT json FROM receipts WHERE seq = 5)"
               " ELSE (SELECT json FROM receipts WHERE seq = 2) END WHERE seq IN (2, 5)",
               "seq 5: reordered: found in place of seq 2 (store row 2)")
    store_case("s-altered", "UPDATE receipts SET json = replace(json, '\"status\":\"blocked\"', '\"status\":\"expired\"')",
               "seq 2: altered")
    store_case("s-cut", "DELETE FROM receipts WHERE seq = 6", "seq 6: missing: the checkpoint covers 6 receipts")
    ok("verify chain --state-dir: deleted, swapped, altered and cut-off receipts each rejected")

    # ---- bundles ----
    out = json.loads(warrant("export", "exe_fixture_run", "--state-dir", "state", "-o", "run.tar.gz"))
    if out != {"execution_id": "exe_fixture_run", "bundle": "run.tar.gz"}:
        fail("export: %r" % out)
    warrant("verify", "bundle", "run.tar.gz", "--pubkey", "server.pub")
    warrant("export", "exe_fixture_blocked", "--state-dir", "state", "-o", "blocked.tar.gz")
    warrant("verify", "bundle", "blocked.tar.gz", "--pubkey", "server.pub")
    warrant("export", "exe_nope", "--state-dir", "state", "-o", "nope.tar.gz", code=2, err="no receipt for execution")
    warrant("verify", "bundle", "run.tar.gz", "--pubkey", "alice.pub", code=1, err="does not verify with the trusted key")
    with tarfile.open("run.tar.gz") as t:
        members = {m.name: t.extractfile(m).read() for m in t.getmembers()}
    expected = ["receipt.json", "contract.json", "decision.json", "approvals.json", "policy.json", "stdout", "stderr",
                "receipt-signing.pub", "checkpoint", "inclusion-proof.json", "SHA256SUMS", "SHA256SUMS.sig"]
    if list(members) != expected:
        fail("bundle members %r" % list(members))
    if members["stdout"] != "héllo\n".encode():
        fail("bundle stdout %r" % members["stdout"])
    os.mkdir("unpacked")
    for n, data in members.items():
        open("unpacked/" + n, "wb").write(data)
    if subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd="unpacked").returncode != 0:
        fail("sha256sum -c SHA256SUMS failed")
    ok("export writes a tar.gz with contract, decision, approvals, receipt, output, policy, key and a signed "
       "manifest that sha256sum -c accepts; verify bundle accepts it")

    def pack(name, files):
        with tarfile.open(name, "w:gz") as t:
            for n, data in files.items():
                info = tarfile.TarInfo(n)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))

    def flipped(data):
        b = bytearray(data)
        b[len(b) // 2] ^= 0x01
        return bytes(b)

    def manifest(files):
        return "".join("%s  %s\n" % (hashlib.sha256(files[n]).hexdigest(), n)
                       for n in expected[:-2] if n in files).encode()

    server_key = serialization.load_pem_private_key(open("state/receipt-signing.key", "rb").read(), None)
    # What each file's change is caught by once the manifest is rewritten (and re-signed by an insider).
    # (decision.json is unsigned: only the manifest signature and its bindings, tested below, protect it.)
    anchored = {"receipt.json": "receipt.json: ", "contract.json": "contract.json: ",
                "approvals.json": "approvals.json: ", "policy.json": "policy.json: ", "stdout": "stdout: sha256 ",
                "stderr": "stderr: sha256 ", "receipt-signing.pub": "receipt-signing.pub: ",
                "checkpoint": "checkpoint: ", "inclusion-proof.json": "inclusion-proof.json: "}
    for n in expected:
        files = dict(members)
        files[n] = flipped(files[n])
        pack("t.tar.gz", files)
        want = {"SHA256SUMS": "SHA256SUMS.sig: the signature of SHA256SUMS does not verify",
                "SHA256SUMS.sig": "SHA256SUMS.sig: "}.get(n, "%s: sha256 " % n)
        warrant("verify", "bundle", "t.tar.gz", "--pubkey", "server.pub", code=1, err=want)
        if n not in anchored:
            continue
        files["SHA256SUMS"] = manifest(files)
        pack("t.tar.gz", files)
        warrant("verify", "bundle", "t.tar.gz", "--pubkey", "server.pub", code=1,
                err="SHA256SUMS.sig: the signature of SHA256SUMS does not verify")
        files["SHA256SUMS.sig"] = base64.b64encode(server_key.sign(files["SHA256SUMS"])) + b"\n"
        pack("t.tar.gz", files)
        warrant("verify", "bundle", "t.tar.gz", "--pubkey", "server.pub", code=1, err=anchored[n])
    ok("a flipped byte in each of the %d bundle files is rejected naming the file; with the manifest rewritten "
       "the manifest signature fails; re-signed by the server key the receipt's anchors still name the file"
       % len(expected))

    def resigned_bundle(files):
        files["SHA256SUMS"] = manifest(files)
        files["SHA256SUMS.sig"] = base64.b64encode(server_key.sign(files["SHA256SUMS"])) + b"\n"
        pack("t.tar.gz", files)

    files = dict(members)
    files["decision.json"] = files["decision.json"].replace(b'"needs_approval"', b'"allow"')
    resigned_bundle(files)
    warrant("verify", "bundle", "t.tar.gz", "--pubkey", "server.pub", code=1,
            err="decision.json: decision 'allow' does not match the receipt's 'needs_approval'")
    files = dict(members)
    del files["approvals.json"]
    resigned_bundle(files)
    warrant("verify", "bundle", "t.tar.gz", "--pubkey", "server.pub", code=1,
            err="approvals.json: missing from the bundle")
    files = dict(members)
    files["extra"] = b"x"
    pack("t.tar.gz", files)
    warrant("verify", "bundle", "t.tar.gz", "--pubkey", "server.pub", code=1, err="unexpected entry 'extra'")
    with tarfile.open("t.tar.gz", "w:gz") as t:  # a symlink where a file belongs
        for n, data in members.items():
            info = tarfile.TarInfo(n)
            if n == "stdout":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/shadow"
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    warrant("verify", "bundle", "t.tar.gz", "--pubkey", "server.pub", code=1, err="stdout: not a regular file")
    pack("t.tar.gz", {"../receipt.json": members["receipt.json"], **members})
    warrant("verify", "bundle", "t.tar.gz", "--pubkey", "server.pub", code=1, err="unexpected entry '../receipt.json'")
    open("t.tar.gz", "wb").write(open("run.tar.gz", "rb").read()[:200])
    warrant("verify", "bundle", "t.tar.gz", "--pubkey", "server.pub", code=1)
    warrant("verify", "bundle", "absent.tar.gz", "--pubkey", "server.pub", code=2)
    ok("a removed approval, an extra entry, a symlink, a ../ name and a truncated archive are rejected; "
       "an absent file is exit 2")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
print("1..%d" % count)
