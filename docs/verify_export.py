#!/usr/bin/env python3
"""Verifies an `anquan export` directory without anquan: the hash chain of events.jsonl and its
head against manifest.json. The algorithm is the one README.md describes. Usage:
    python3 verify_export.py audit-<id>/
"""
import hashlib
import json
import struct
import sys
import uuid


def field(data: bytes) -> bytes:
    return struct.pack(">Q", len(data)) + data


def uuid_bytes(text) -> bytes:
    return uuid.UUID(text).bytes if text else b""


def event_hash(previous: bytes, record) -> bytes:
    """The chain hash of one events.jsonl line, given the previous event's hash."""
    event, metadata = record["event"], record["event"]["metadata"]
    return hashlib.sha256(
        previous
        + field(event["stream_id"].encode())
        + field(struct.pack(">Q", event["version"]))
        + field(uuid_bytes(event["event_id"]))
        + field(event["event_type"].encode())
        + field(struct.pack(">I", event["schema_version"]))
        # `stored_data`, when present, is the text the chain covers (personal fields
        # sealed); `data` then shows them opened or erased.
        + field(event.get("stored_data", event["data"]).encode())
        + field(struct.pack(">q", record["recorded_at_micros"]))
        + field(struct.pack(">q", record["occurred_at_micros"]))
        + field(record["actor_json"].encode())
        + field(uuid_bytes(metadata["correlation_id"]))
        + field(uuid_bytes(metadata.get("causation_id")))
        + field(uuid_bytes(metadata.get("command_id")))
    ).digest()


def main(directory: str) -> int:
    previous, count = b"\0" * 32, 0
    with open(f"{directory}/events.jsonl", encoding="utf-8") as lines:
        for expected_version, line in enumerate(lines):
            record = json.loads(line)
            event = record["event"]
            digest = event_hash(previous, record)
            if event["version"] != expected_version or digest.hex() != event["hash"]:
                print(f"BROKEN at version {expected_version}")
                return 1
            previous, count = digest, count + 1
    with open(f"{directory}/manifest.json", encoding="utf-8") as manifest:
        head = json.load(manifest)["head_hash"]
    if previous.hex() != head:
        print("BROKEN: the last hash is not the manifest's head hash")
        return 1
    print(f"intact: {count} events, head {head}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
