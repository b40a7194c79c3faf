"""An evidence-bundle verifier written from services/compliance-audit/README.md alone.

usage: verify_bundle.py <bundle.json> <verifier key>
Prints "ok <entries> <tree size>" and exits 0, or prints the problem and exits 1.
"""

import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def fail(message):
    print(message)
    sys.exit(1)


def open_checkpoint(note, vkey):
    name, key_id_hex, key_b64 = vkey.split("+", 2)
    raw = base64.b64decode(key_b64)
    if raw[0] != 0x01 or len(raw) != 33:
        fail("not an Ed25519 verifier key")
    public = raw[1:]
    key_id = hashlib.sha256(name.encode() + b"\n" + b"\x01" + public).digest()[:4]
    if key_id.hex() != key_id_hex:
        fail("key id does not match the key")
    split = note.rindex("\n\n")
    text, signatures = note[: split + 1], note[split + 2 :]
    for line in signatures.splitlines():
        if not line.startswith("\u2014 "):
            fail("malformed signature line")
        signer, blob = line[2:].split(" ", 1)
        blob = base64.b64decode(blob)
        if signer != name or blob[:4] != key_id:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(blob[4:], text.encode())
        except InvalidSignature:
            fail("bad checkpoint signature")
        origin, size, root = text.split("\n")[:3]
        if origin != name:
            fail("origin is not the key name")
        return int(size), base64.b64decode(root)
    fail("checkpoint not signed by the key")


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(index, size, leaf, proof):
    # RFC 9162 section 2.1.3.2
    fn, sn = index, size - 1
    r = hashlib.sha256(b"\x00" + leaf).digest()
    for p in proof:
        if sn == 0:
            fail("proof too long")
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        fail("proof too short")
    return r


def main():
    bundle = json.load(open(sys.argv[1]))
    if bundle["format"] != "redress-audit-bundle/1":
        fail("not a bundle")
    size, root = open_checkpoint(bundle["checkpoint"], sys.argv[2])
    for entry in bundle["entries"]:
        if entry["index"] >= size:
            fail(f"entry {entry['index']}: beyond the checkpoint")
        leaf = base64.b64decode(entry["leaf"])
        proof = [base64.b64decode(h) for h in entry["proof"]]
        if root_from_inclusion(entry["index"], size, leaf, proof) != root:
            fail(f"entry {entry['index']}: inclusion proof does not reach the signed root")
    print(f"ok {len(bundle['entries'])} {size}")


main()
