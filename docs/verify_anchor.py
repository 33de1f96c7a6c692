#!/usr/bin/env python3
"""Checks an `anquan export` directory against signed anchors without anquan and without any
package: the Ed25519 signature of the anchor each inclusion proof names (RFC 8032's reference
verification, in the standard library's integers), that the key id is the fingerprint of its
public key, each event's chain hash recomputed from events.jsonl (as verify_export.py does),
and each proof's audit path (RFC 6962 / RFC 9162) up to the anchor's signed root.

    python3 verify_anchor.py audit-<id>/ [anchors.json]

The anchors and keys come from the export's anchors.json, or from the file given second: a copy
of GET /anchors kept elsewhere, which is the point (an anchor proves nothing to someone who
takes both the log and the anchors from the same hands). Exit status 0 when every proof holds.
"""
import datetime
import hashlib
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from verify_export import event_hash  # noqa: E402

# Ed25519 verification, RFC 8032 section 6.
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def point_add(a, b):
    x = (a[1] - a[0]) * (b[1] - b[0]) % P
    y = (a[1] + a[0]) * (b[1] + b[0]) % P
    c = 2 * a[3] * b[3] * D % P
    d = 2 * a[2] * b[2] % P
    e, f, g, h = y - x, d - c, d + c, y + x
    return (e * f, g * h, f * g, e * h)


def point_mul(scalar, point):
    result = (0, 1, 1, 0)
    while scalar > 0:
        if scalar & 1:
            result = point_add(result, point)
        point = point_add(point, point)
        scalar >>= 1
    return result


def point_equal(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


def recover_x(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


G_Y = 4 * pow(5, P - 2, P) % P
G_X = recover_x(G_Y, 0)
G = (G_X, G_Y, 1, G_X * G_Y % P)


def point_decompress(data):
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % P)


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    if len(public) != 32 or len(signature) != 64:
        return False
    a, r = point_decompress(public), point_decompress(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % L
    return point_equal(point_mul(s, G), point_add(r, point_mul(h, a)))


# The anchor's signed bytes: see anquan_projections::anchors.
def field(data: bytes) -> bytes:
    return struct.pack(">Q", len(data)) + data


def micros(text: str) -> int:
    instant = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (instant - epoch) // datetime.timedelta(microseconds=1)


def signed_bytes(anchor) -> bytes:
    out = b"anquan anchor v1" + struct.pack(">QQQ", anchor["sequence"], anchor["log_size"], anchor["position"])
    out += bytes.fromhex(anchor["root"]) + struct.pack(">q", micros(anchor["taken_at"]))
    out += field(anchor["key_id"].encode()) + struct.pack(">Q", len(anchor["heads"]))
    for head in anchor["heads"]:
        out += field(head["stream_id"].encode()) + struct.pack(">Q", head["version"]) + bytes.fromhex(head["hash"])
    return out


def anchor_signed(anchor, keys) -> str:
    """None when the anchor's signature holds with a known key, else why not."""
    public = keys.get(anchor["key_id"])
    if public is None:
        return f"anchor {anchor['sequence']} is signed by unknown key {anchor['key_id']}"
    if hashlib.sha256(bytes.fromhex(public)).hexdigest()[:16] != anchor["key_id"] or public != anchor["public_key"]:
        return f"anchor {anchor['sequence']}: key {anchor['key_id']} is not the key its id names"
    if not ed25519_verify(bytes.fromhex(public), signed_bytes(anchor), bytes.fromhex(anchor["signature"])):
        return f"anchor {anchor['sequence']}: the signature does not verify (altered anchor)"
    return None


# RFC 6962 audit paths, checked as RFC 9162 section 2.1.3.2 says.
def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\0" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\1" + left + right).digest()


def included(leaf: bytes, index: int, size: int, path, root: bytes) -> bool:
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for node in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(node, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, node)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def main(directory: str, anchors_file: str) -> int:
    with open(anchors_file, encoding="utf-8") as file:
        document = json.load(file)
    keys = {key["key_id"]: key["public_key"] for key in document["keys"]}
    anchors = {anchor["sequence"]: anchor for anchor in document["anchors"]}
    hashes, previous = {}, b"\0" * 32
    with open(f"{directory}/events.jsonl", encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            previous = event_hash(previous, record)
            hashes[record["event"]["version"]] = previous.hex()
    proven, signed = 0, set()
    with open(f"{directory}/proofs.jsonl", encoding="utf-8") as lines:
        for line in lines:
            proof = json.loads(line)
            anchor = anchors.get(proof["anchor"])
            if anchor is None:
                print(f"BROKEN: version {proof['version']} is proven against anchor {proof['anchor']}, which is not known")
                return 1
            if proof["anchor"] not in signed:
                problem = anchor_signed(anchor, keys)
                if problem:
                    print(f"BROKEN: {problem}")
                    return 1
                signed.add(proof["anchor"])
            if hashes.get(proof["version"]) != proof["event_hash"]:
                print(f"BROKEN at version {proof['version']}: the proof is for another hash than the event's")
                return 1
            path = [bytes.fromhex(node) for node in proof["path"]]
            leaf = leaf_hash(bytes.fromhex(proof["event_hash"]))
            if not included(leaf, proof["leaf_index"], anchor["log_size"], path, bytes.fromhex(anchor["root"])):
                print(f"BROKEN at version {proof['version']}: not included in anchor {proof['anchor']}'s tree")
                return 1
            proven += 1
    print(f"anchored: {proven} of {len(hashes)} events proven against signed anchors {sorted(signed)}")
    return 0 if proven > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else f"{sys.argv[1]}/anchors.json"))
