#!/usr/bin/env python3
"""warrant validate | hash | check: exit codes 0/1/2, one-line errors, and
hostile input that must be refused cleanly (never a crash or a hang).

usage: test_cli.py PATH/TO/warrant   (env: CSC_DIR, WARRANT_SRC)"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

WARRANT = sys.argv[1]
CSC = os.environ["CSC_DIR"]
SRC = os.environ["WARRANT_SRC"]
EXAMPLES = os.path.join(CSC, "examples")
failures = []
ran = 0


def run(*args):
    p = subprocess.run([WARRANT, *args], capture_output=True, text=True, errors="replace", timeout=60)
    return p.returncode, p.stdout, p.stderr


def check(name, cond, detail=""):
    global ran
    ran += 1
    if not cond:
        failures.append(f"{name}: {detail}")


def expect(name, args, code, out_has=None, err_has=None):
    rc, out, err = run(*args)
    ok = rc == code and (out_has is None or out_has in out) and (err_has is None or err_has in err)
    if code == 2 or err_has is not None:
        # one human line on stderr, prefixed like every warrant error
        ok = ok and err.count("\n") == 1 and err.startswith("warrant: ")
    check(name, ok, f"rc={rc} (want {code}) out={out[:300]!r} err={err[:300]!r}")
    return out


def canonical_sha256(obj, drop_nulls):
    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if not (drop_nulls and v is None)}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o
    text = json.dumps(strip(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


with tempfile.TemporaryDirectory() as tmp:
    # The CLI's state (policy-examples records) goes here, never to ~/.local/state.
    os.environ["WARRANT_STATE_DIR"] = os.path.join(tmp, "state")

    def write(name, data):
        path = os.path.join(tmp, name)
        with open(path, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        return path

    git_status = os.path.join(EXAMPLES, "contracts", "git-status.json")
    curl_denied = os.path.join(EXAMPLES, "contracts", "curl-denied.json")
    default_yaml = os.path.join(SRC, "policies", "default.yaml")

    # --- validate: valid objects of every kind
    expect("validate contract", ["validate", "contract", git_status], 0, out_has="valid contract")
    for pack in ("default", "dev-write", "ci", "capsule"):
        expect(f"validate policy {pack}", ["validate", "policy", os.path.join(SRC, "policies", pack + ".yaml")], 0,
               out_has=f"valid policy {pack}")
    for ex in sorted(os.listdir(os.path.join(EXAMPLES, "policies"))):
        expect(f"validate CSC example policy {ex}", ["validate", "policy", os.path.join(EXAMPLES, "policies", ex)], 0)
    # (the CSC examples/receipts lack receipt_version: the conformance inputs are the valid ones)
    for i, fx in enumerate(json.load(open(os.path.join(CSC, "conformance", "receipts", "valid.json")))):
        expect(f"validate receipt {fx['id']}", ["validate", "receipt", write(f"receipt{i}.json", json.dumps(fx["input"]))],
               0, out_has="valid receipt")
    # approvals validate against warrant's superset (signature required)
    appr = {"approval_version": "csc.approval.v0.1", "approval_id": "appr-0001", "contract_sha256": "a" * 64,
            "approver": {"identity": "alice@example.com", "method": "cli"},
            "approved_at": "2026-11-22T05:00:00Z", "expires_at": "2026-11-22T06:00:00Z", "scope": "single_execution",
            "signature": {"algorithm": "ed25519", "key_id": "0123456789abcdef", "signature": "AAAA"}}
    expect("validate approval", ["validate", "approval", write("approval.json", json.dumps(appr))], 0,
           out_has="valid approval (warrant.approval.schema.json)")
    del appr["signature"]
    expect("validate unsigned approval", ["validate", "approval", write("unsigned.json", json.dumps(appr))], 1,
           err_has="signature")

    # --- check: allow 0, deny 1; the decision validates as a decision
    out = expect("check allow", ["check", "--policy", default_yaml, git_status], 0, out_has='"decision": "allow"')
    decision = write("decision.json", out)
    expect("validate decision", ["validate", "decision", decision], 0, out_has="valid decision")
    check("check prints the contract hash", json.loads(out)["contract_sha256"] ==
          canonical_sha256(json.load(open(git_status)), True))
    out = expect("check deny", ["check", "--policy", default_yaml, curl_denied], 1, out_has='"decision": "deny"')
    check("deny has one reason code", len(json.loads(out)["reason_codes"]) == 1, out)
    expect("check bundled default", ["check", git_status], 0, out_has='"policy_profile": "default"')
    expect("check missing policy", ["check", "--policy", os.path.join(tmp, "nope.yaml"), git_status], 2,
           err_has="failed to read")
    expect("check usage", ["check", "--policy"], 2, err_has="usage")

    # --- hash: bare hex equal to python3's canonical form
    out = expect("hash contract", ["hash", "contract", git_status], 0)
    check("hash contract value", out.strip() == canonical_sha256(json.load(open(git_status)), True), out)
    # JSON is YAML: a policy written as JSON hashes like python's json.dumps of it
    pol = {"policy_schema_version": "csc.policy.v0.1", "name": "j\u00e9", "allow_commands": ["git"],
           "allowed_effect_types": ["observe"], "allowed_risk_classes": ["low"], "max_timeout_sec": 30,
           "network": "deny", "allow_secret_refs": False, "allowed_cwd_prefixes": ["/workspace"],
           "allowed_read_prefixes": ["/workspace"], "sandbox": {"cpu_sec": 5}}
    out = expect("hash policy", ["hash", "policy", write("p.yaml", json.dumps(pol, ensure_ascii=False))], 0)
    check("hash policy value", out.strip() == canonical_sha256(pol, False), out)
    try:
        import yaml  # PyYAML, the CSC reference loader, when installed
        text = open(default_yaml, encoding="utf-8").read()
        out = expect("hash default policy", ["hash", "policy", default_yaml], 0)
        check("hash policy equals PyYAML", out.strip() == canonical_sha256(yaml.safe_load(text), False), out)
    except ImportError:
        pass

    # --- invalid documents: exit 1 with the JSON pointer
    bad = json.load(open(git_status))
    bad["commands"][0]["timeout_sec"] = 0
    expect("invalid contract", ["validate", "contract", write("bad.json", json.dumps(bad))], 1,
           err_has="/commands/0/timeout_sec")
    bad = json.load(open(git_status))
    bad["commands"][0]["cwd"] = "/workspace/../../etc"
    expect("contract path above /", ["validate", "contract", write("up.json", json.dumps(bad))], 1,
           err_has="climbs above /")
    expect("invalid policy", ["validate", "policy", write("bad.yaml", "policy_schema_version: csc.policy.v0.1\n")],
           1, err_has="required property")
    expect("duplicate key policy", ["validate", "policy", write("dup.yaml", "a: 1\na: 2\n")], 2,
           err_has="duplicate key")
    expect("invalid receipt", ["validate", "receipt", write("r.json", "{}")], 1, err_has="required property")

    # --- hostile input: every kind, every shape, exit 2 with one line
    hostile = {
        "empty": b"",
        "not JSON": b"hello world\n",
        "trailing garbage": b'{"a": 1} trailing',
        "100000-deep nesting": b"[" * 100000 + b"]" * 100000,
        "invalid UTF-8": b'{"a": "\xff\xfe"}',
        "NUL byte": b'{"a": "x\x00y"}',
    }
    big = os.path.join(tmp, "big.json")
    with open(big, "wb") as f:
        f.write(b'{"a": "' + b"x" * (50 * 1024 * 1024) + b'"}')
    files = {name: write(name.replace(" ", "_") + ".json", data) for name, data in hostile.items()}
    files["50 MB file"] = big
    files["missing file"] = os.path.join(tmp, "does-not-exist.json")
    files["a directory"] = tmp
    for kind in ("contract", "decision", "receipt", "approval", "policy"):
        for name, path in files.items():
            expect(f"validate {kind} {name}", ["validate", kind, path], 2)
    for name, path in files.items():
        expect(f"hash contract {name}", ["hash", "contract", path], 2)
        expect(f"check policy {name}", ["check", "--policy", path, git_status], 2)
        expect(f"check contract {name}", ["check", "--policy", default_yaml, path], 2)
    expect("yaml alias bomb", ["validate", "policy", write("bomb.yaml", "a: &a [x]\nb: &b [*a, *a]\n")], 2,
           err_has="anchors and aliases")
    expect("deep YAML", ["validate", "policy", write("deep.yaml", "a: " + "[" * 100000)], 2)

    # --- usage
    expect("validate usage", ["validate", "contract"], 2, err_has="usage")
    expect("validate unknown kind", ["validate", "thing", git_status], 2, err_has="unknown kind")
    expect("hash unknown kind", ["hash", "receipt", git_status], 2, err_has="unknown kind")

print(f"cli: {ran} checks, {len(failures)} failed")
for f in failures:
    print("FAIL", f)
sys.exit(1 if failures else 0)
