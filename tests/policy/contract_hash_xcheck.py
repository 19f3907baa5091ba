#!/usr/bin/env python3
"""contract_sha256 as CSC computes it: over its model of the contract, in
which an absent expected_outputs is the default [] and integers written
10.0, 1e1 or 1E+1 are the integer 10. `warrant hash contract` must give
sha256(json.dumps(model, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)) for every CSC example and fixture contract, with and
without expected_outputs and with timeout_sec spelled as a float.

usage: contract_hash_xcheck.py PATH/TO/warrant   (env: CSC_DIR)"""
import glob
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile

WARRANT = sys.argv[1]
CSC = os.environ["CSC_DIR"]
failures = []
ran = 0


def model(o):
    if isinstance(o, float) and math.isfinite(o) and o == int(o):
        return int(o)
    if isinstance(o, dict):
        return {k: model(v) for k, v in o.items() if v is not None}
    if isinstance(o, list):
        return [model(v) for v in o]
    return o


def csc_hash(doc):
    m = model(doc)
    m.setdefault("expected_outputs", [])
    return hashlib.sha256(json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                          .encode()).hexdigest()


def warrant_hash(text, tmp):
    path = os.path.join(tmp, "c.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    p = subprocess.run([WARRANT, "hash", "contract", path], capture_output=True, text=True, timeout=60)
    return p.stdout.strip() if p.returncode == 0 else "error: " + p.stderr.strip()


def variants(doc):
    """(name, JSON text) forms of one contract."""
    without = {k: v for k, v in doc.items() if k != "expected_outputs"}
    yield "without expected_outputs", json.dumps(without)
    yield "with expected_outputs []", json.dumps({**without, "expected_outputs": []})
    yield "with expected_outputs", json.dumps({**without, "expected_outputs": ["/workspace/out.txt"]})
    text = json.dumps(without)
    t = doc["commands"][0]["timeout_sec"]
    for spelling in (f"{t}.0", f"{t}e0", f"{t}E+0", f"{t * 10}e-1"):
        yield f"timeout_sec {spelling}", text.replace(f'"timeout_sec": {t}', f'"timeout_sec": {spelling}', 1)


def main():
    global ran
    docs = []
    for path in sorted(glob.glob(os.path.join(CSC, "examples", "contracts", "*.json"))):
        with open(path, encoding="utf-8") as f:
            docs.append((os.path.basename(path), json.load(f)))
    with open(os.path.join(CSC, "conformance", "contracts", "valid.json"), encoding="utf-8") as f:
        docs += [(fx["id"], fx["input"]) for fx in json.load(f)]
    with tempfile.TemporaryDirectory() as tmp:
        for label, doc in docs:
            for name, text in variants(doc):
                ran += 1
                want, got = csc_hash(json.loads(text)), warrant_hash(text, tmp)
                if want != got:
                    failures.append(f"{label} {name}: warrant {got}, CSC model {want}")
    for f in failures:
        print("FAIL", f)
    print(f"{ran} contract forms, {len(failures)} differ")
    if ran == 0:
        print("no CSC contracts found")
        sys.exit(77)
    sys.exit(1 if failures else 0)


main()
