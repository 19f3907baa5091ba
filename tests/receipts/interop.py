#!/usr/bin/env python3
"""Interop with the CSC signing rule, independently of warrant's C code.

The CSC reference runner signs Ed25519 over
json.dumps(receipt_without_signature_signature, sort_keys=True,
separators=(",", ":"), ensure_ascii=False).encode("utf-8").
1. warrant signs a fixed receipt with a fixed key and a fixed clock; Python
   (package `cryptography`) recomputes the signature with exactly that rule:
   the two must be byte-identical (Ed25519 is deterministic).
2. Python signs a receipt; warrant (wr_receipt_verify, through the test
   driver and through `warrant verify receipt`) must accept it, and reject it
   after a one-character change.

usage: interop.py RECEIPT_DRIVER WARRANT_CLI
"""
import base64
import copy
import hashlib
import json
import os
import subprocess
import sys
import tempfile

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DRIVER, WARRANT = sys.argv[1], sys.argv[2]
SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")  # RFC 8032 test 1
NOW_MS = 1795000000123
SIGNED_AT = "2026-11-18T11:06:40.123Z"

# Non-ASCII, escapes, "/" and nested objects, so the canonical forms must agree in detail.
RECEIPT = {
    "receipt_version": "csc.receipt.v0.1",
    "contract_id": "contract_interop_ü",
    "execution_id": "exe_interop",
    "contract_sha256": "a" * 64,
    "status": "failed",
    "started_at": "2026-11-18T09:46:40.000Z",
    "ended_at": "2026-11-18T09:46:40.100Z",
    "exit_code": 3,
    "stdout_hash": "sha256:" + "b" * 64,
    "stderr_hash": "sha256:" + "c" * 64,
    "stdout_truncated": False,
    "stderr_truncated": True,
    "artifacts": [{"path": "/work/out/ré sult.txt", "sha256": "d" * 64}],
    "policy_profile": "default",
    "policy_sha256": "e" * 64,
    "runner_version": "0.1.0",
    "execution_mode": "hardened",
    "sandbox_profile_id": "default",
    "effect_summary": {"files_written": 1, "network_used": False, "secrets_used": 0},
    "completed_command_ids": ["cmd_1"],
    "failed_command_id": "cmd_2",
    "error": 'tab\there "quoted" back\\slash \u0001 ctl / slash ✓ 日本',
    "approvals": [{"approval_id": "apr_1", "identity": "alice@example.com", "method": "cli"}],
    "seq": 7,
    "prev_receipt_sha256": "f" * 64,
    "stdout_bytes": 123456789012,
    "stderr_bytes": 0,
    "agent_id": "agent-λ",
}


def payload(receipt):
    r = copy.deepcopy(receipt)
    r["signature"].pop("signature", None)
    return json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def key_id(pk_raw):
    return hashlib.sha256(pk_raw).hexdigest()[:16]


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


sk = Ed25519PrivateKey.from_private_bytes(SEED)
pk_raw = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
pk_pem = sk.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

# 1. warrant signs, Python reproduces the signature byte for byte.
out = subprocess.run([DRIVER, "sign", SEED.hex(), str(NOW_MS)], input=json.dumps(RECEIPT).encode(),
                     capture_output=True, check=True).stdout
ours = json.loads(out)
sig = ours["signature"]
if sig["algorithm"] != "ed25519" or sig["key_id"] != key_id(pk_raw) or sig["signed_at"] != SIGNED_AT:
    fail("unexpected signature object %r" % sig)
if ours["signing_key_id"] != key_id(pk_raw):
    fail("signing_key_id %s" % ours["signing_key_id"])
# warrant's output is itself canonical: the same bytes Python produces.
if out != json.dumps(ours, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode():
    fail("warrant's canonical JSON differs from Python's")
expected = base64.b64encode(sk.sign(payload(ours))).decode()
if sig["signature"] != expected:
    fail("signature differs:\n warrant %s\n python  %s" % (sig["signature"], expected))
print("ok 1 - warrant's signature equals the CSC rule's (python cryptography): " + expected[:16] + "...")

# 2. Python signs, warrant verifies.
theirs = copy.deepcopy(RECEIPT)
theirs["execution_id"] = "exe_signed_by_python"
theirs["signing_key_id"] = key_id(pk_raw)
theirs["signature"] = {"algorithm": "ed25519", "key_id": key_id(pk_raw), "signed_at": SIGNED_AT}
theirs["signature"]["signature"] = base64.b64encode(sk.sign(payload(theirs))).decode()
text = json.dumps(theirs, ensure_ascii=True, indent=2)  # any serialisation: only the payload rule matters

with tempfile.TemporaryDirectory() as tmp:
    pub = os.path.join(tmp, "python.pub")
    with open(pub, "wb") as f:
        f.write(pk_pem)
    r = subprocess.run([DRIVER, "verify", pub], input=text.encode(), capture_output=True)
    if r.returncode != 0:
        fail("wr_receipt_verify rejected the python-signed receipt: " + r.stderr.decode())
    rec = os.path.join(tmp, "receipt.json")
    with open(rec, "w") as f:
        f.write(text)
    r = subprocess.run([WARRANT, "verify", "receipt", rec, "--pubkey", pub], capture_output=True)
    if r.returncode != 0 or json.loads(r.stdout)["valid"] is not True:
        fail("warrant verify receipt rejected the python-signed receipt: " + r.stderr.decode())
    print("ok 2 - a python-signed receipt verifies with wr_receipt_verify and warrant verify receipt")

    theirs["error"] = theirs["error"].replace("✓", "✗")
    with open(rec, "w") as f:
        json.dump(theirs, f)
    r = subprocess.run([WARRANT, "verify", "receipt", rec, "--pubkey", pub], capture_output=True)
    if r.returncode != 1 or b"signature does not verify" not in r.stderr:
        fail("altered python-signed receipt: exit %d, %s" % (r.returncode, r.stderr.decode()))
    print("ok 3 - the same receipt with one character changed is rejected (exit 1)")

    # 4. A CSC signer names its key as it likes and keeps the public key as
    # 32 raw bytes; CSC's verifier takes that id with --key-id, and so does
    # warrant (the id is signed: another id is refused).
    csc = copy.deepcopy(RECEIPT)
    csc["execution_id"] = "exe_signed_by_csc"
    csc.pop("signing_key_id", None)
    csc["signature"] = {"algorithm": "ed25519", "key_id": "csc-runner-2026", "signed_at": SIGNED_AT}
    csc["signature"]["signature"] = base64.b64encode(sk.sign(payload(csc))).decode()
    with open(rec, "w") as f:
        json.dump(csc, f)
    raw = os.path.join(tmp, "csc.key.pub")
    with open(raw, "wb") as f:
        f.write(pk_raw)
    r = subprocess.run([WARRANT, "verify", "receipt", rec, "--pubkey", raw, "--key-id", "csc-runner-2026"],
                       capture_output=True)
    if r.returncode != 0:
        fail("CSC-signed receipt with --key-id and a raw key file: " + r.stderr.decode())
    r = subprocess.run([WARRANT, "verify", "receipt", rec, "--pubkey", raw], capture_output=True)
    if r.returncode != 1 or b"csc-runner-2026" not in r.stderr:
        fail("without --key-id the CSC key id must be named and refused: " + r.stderr.decode())
    r = subprocess.run([WARRANT, "verify", "receipt", rec, "--pubkey", raw, "--key-id", "other"], capture_output=True)
    if r.returncode != 1:
        fail("a different --key-id must be refused: exit %d" % r.returncode)
    print("ok 4 - a CSC signer's key id (--key-id) and a raw 32-byte public key file verify")
