#!/usr/bin/env python3
"""Checks exported receipts against a checkpoint without warrant (docs/transparency-log.md).
usage: verify_checkpoint.py LOG_PUBKEY.pem RECEIPTS_DIR [CHECKPOINT]  (default RECEIPTS_DIR/checkpoint)"""
import base64, hashlib, sys
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

H = lambda b: hashlib.sha256(b).digest()
def mth(leaves):  # RFC 9162 §2.1.1; leaf i is the file of the receipt with seq i + 1
    if len(leaves) <= 1: return H(b"\0" + leaves[0]) if leaves else H(b"")
    k = 1 << (len(leaves) - 1).bit_length() - 1
    return H(b"\1" + mth(leaves[:k]) + mth(leaves[k:]))
key = load_pem_public_key(open(sys.argv[1], "rb").read())
raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
name = "warrant/" + hashlib.sha256(raw).hexdigest()[:16]  # origin line and key name
text, sigs = open(sys.argv[3] if len(sys.argv) > 3 else sys.argv[2] + "/checkpoint", encoding="utf-8").read().rsplit("\n\n", 1)
origin, size, root = (text + "\n").splitlines()[:3]
key_id = H(name.encode() + b"\n\x01" + raw)[:4]  # signed-note Ed25519 key ID
blobs = [base64.b64decode(l.split(" ")[2]) for l in sigs.splitlines() if l.split(" ")[:2] == ["\u2014", name]]
[key.verify(b[4:], (text + "\n").encode()) for b in blobs if b[:4] == key_id]  # raises InvalidSignature
assert origin == name and any(b[:4] == key_id for b in blobs), "not signed by this log's key"
leaves = [open("%s/%06d.json" % (sys.argv[2], i), "rb").read() for i in range(1, int(size) + 1)]
assert mth(leaves) == base64.b64decode(root), "the receipts do not hash to the checkpoint's root"
print("ok: %s receipts match the checkpoint of %s" % (size, origin))
