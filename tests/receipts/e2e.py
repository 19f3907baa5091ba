#!/usr/bin/env python3
"""Evidence from real runs: `warrant run` of a contract that needs a human
approval (blocked receipt), `warrant approvals approve` with the approver's
own key, the run again (success receipt naming the approval), then
`warrant export` of both and `warrant verify bundle|chain` offline. The
approval inside the bundle is checked against the approver key of the
hash-bound policy: an artifact re-attributed to someone else is refused even
when the whole bundle is re-signed with the server key.

usage: e2e.py WARRANT_CLI   (as root: `warrant run` needs it for the sandbox user)
"""
import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

from cryptography.hazmat.primitives import serialization

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from truerun import write_truerun  # noqa: E402

WARRANT = os.path.abspath(sys.argv[1])
if os.geteuid() != 0:
    print("skip: warrant run needs root here")
    sys.exit(77)


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def warrant(*args, code=0, err=None):
    r = subprocess.run([WARRANT, *args], capture_output=True)
    if r.returncode != code or (err and err not in r.stderr.decode()):
        fail("warrant %s: exit %d (want %d): %s" % (" ".join(args), r.returncode, code, r.stderr.decode()))
    return r.stdout.decode()


tmp = tempfile.mkdtemp(prefix="wr-e2e-")
try:
    os.chmod(tmp, 0o755)
    os.chdir(tmp)
    warrant("keygen", "--out", "alice")
    run = ["run", *write_truerun(tmp, "e2e-approval", risk="medium", mode="human_required",
                                 approver_pem=open("alice.pub").read())]
    blocked = json.loads(warrant(*run, code=1))
    if blocked["status"] != "blocked":
        fail("first run: %r" % blocked)
    request = json.loads(warrant("approvals", "list", "--json", "--state-dir", "state"))[0]["request_id"]
    warrant("approvals", "approve", request, "--key", "alice.key", "--identity", "alice@example.com",
            "--state-dir", "state")
    done = json.loads(warrant(*run))
    if done["status"] != "success" or [a["identity"] for a in done["approvals"]] != ["alice@example.com"]:
        fail("second run: %r" % done)

    open("server.pub", "w").write(warrant("pubkey", "--state-dir", "state"))
    for r in (blocked, done):
        warrant("export", r["execution_id"], "--state-dir", "state", "-o", r["status"] + ".tar.gz")
        warrant("verify", "bundle", r["status"] + ".tar.gz", "--pubkey", "server.pub")
    if json.loads(warrant("verify", "chain", "--state-dir", "state", "--pubkey", "server.pub"))["receipts"] != 2:
        fail("chain length")
    print("ok 1 - blocked and approved runs export to bundles that verify offline; the chain holds both")

    # An insider with the server key re-attributes the approval to someone the policy does not list.
    with tarfile.open("success.tar.gz") as t:
        files = {m.name: t.extractfile(m).read() for m in t.getmembers()}
    arts = json.loads(files["approvals.json"])
    arts[0]["approver"]["identity"] = "mallory@example.com"
    files["approvals.json"] = json.dumps(arts).encode()
    files["SHA256SUMS"] = "".join("%s  %s\n" % (hashlib.sha256(files[n]).hexdigest(), n)
                                  for n in files if not n.startswith("SHA256SUMS")).encode()
    key = serialization.load_pem_private_key(open("state/receipt-signing.key", "rb").read(), None)
    files["SHA256SUMS.sig"] = base64.b64encode(key.sign(files["SHA256SUMS"])) + b"\n"
    with tarfile.open("forged.tar.gz", "w:gz") as t:
        for n, data in files.items():
            info = tarfile.TarInfo(n)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    warrant("verify", "bundle", "forged.tar.gz", "--pubkey", "server.pub", code=1,
            err="is not signed by a key the policy lists for its approver")
    print("ok 2 - a re-attributed approval is refused even in a bundle re-signed with the server key")
finally:
    os.chdir("/")
    shutil.rmtree(tmp, ignore_errors=True)
print("1..2")
