#!/usr/bin/env bash
# What SQLite itself takes for the store's own write transaction, without anquan's client: the
# ceiling beside `scripts/bench-sqlite-ceiling.sh` (a bare row) that says how much of the gap
# between the store and a bare row is SQLite's work on the store's schema and how much is
# anquan's.
#
#   scripts/bench-sqlite-store-transaction.sh [SECONDS] [DIR] [ANQUAN]
#
# It lets `ANQUAN verify --data-dir` (default: target/release/anquan) create the store's file
# and schema in a fresh directory under DIR (the real schema, nothing copied; default: a
# temporary directory in ${TMPDIR:-/tmp}), then commits, on one connection with the store's
# settings (WAL, synchronous = FULL), transactions shaped as the writer's: `BEGIN IMMEDIATE`,
# then for each append of the group a savepoint, its event into `event_log` (all its columns and
# indexes), with a command row as the service writes commands (`service`) or without, as
# `anquan bench store` appends (`bench`), the release; `COMMIT`. Groups of 1, 8 and 32 appends of
# one ~1 KB event each (phase A; phase C with 8 and 32 writers), each SECONDS long (default 10);
# then one event without the savepoint (`event_alone`). Streams, versions and ids are made as
# the benchmark's (1,000 streams round robin, ids ordered in time). SQLite checkpoints by itself
# (its default, as in scripts/bench-sqlite-ceiling.sh; the store checkpoints on a thread of its
# own). Python's sqlite3 module drives SQLite: its own cost per statement (a few microseconds,
# four statements an append) is in these figures, so they are a floor of what SQLite can do
# with the store's transaction rather than a ceiling. Output: one line per figure,
# `name transactions_per_s events_per_s`.
set -euo pipefail

seconds=${1:-10}
dir=${2:-}
anquan=${3:-target/release/anquan}
scratch=$(mktemp -d "${dir:-${TMPDIR:-/tmp}}/anquan-sqlite-transaction.XXXXXX")
trap 'rm -rf -- "$scratch"' EXIT

"$anquan" verify --data-dir "$scratch" >/dev/null
python3 - "$scratch/anquan.sqlite" "$seconds" <<'PY'
import hashlib, json, sqlite3, sys, time

path, seconds = sys.argv[1], float(sys.argv[2])
body = json.dumps({"pad": "x" * 1060})
actor = json.dumps({"role": "bench"})
db = sqlite3.connect(path, isolation_level=None)
assert db.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
db.execute("PRAGMA synchronous = FULL")
insert_event = (
    "INSERT INTO event_log (stream_id, version, event_id, event_type, schema_version, data, "
    "occurred_at, recorded_at, actor, correlation_id, causation_id, command_id, hash) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
)
insert_command = (
    "INSERT INTO event_commands (command_id, stream_id, first_version, last_version, last_position, digest) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
)
counter = 0


def append(with_command, with_savepoint):
    """One append of one event, made as the benchmark's are (1,000 streams round robin, ids
    ordered in time as UUIDv7 are)."""
    global counter
    counter += 1
    stream = "enterprise-%04d" % (counter % 1000)
    version = counter // 1000
    command_id = ((2 << 120) | counter).to_bytes(16, "big") if with_command else None
    now = int(time.time() * 1_000_000)
    digest = hashlib.sha256(counter.to_bytes(8, "big")).digest()
    if with_savepoint:
        db.execute("SAVEPOINT append")
    db.execute(insert_event, (stream, version, counter.to_bytes(16, "big"), "DocumentUploaded", 1, body, now,
                              now, actor, ((1 << 120) | counter).to_bytes(16, "big"), None, command_id, digest))
    if with_command:
        db.execute(insert_command, (command_id, stream, version, version, counter, digest))
    if with_savepoint:
        db.execute("RELEASE append")


def groups(appends, with_command=True, with_savepoint=True):
    done, deadline = 0, time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < deadline:
        db.execute("BEGIN IMMEDIATE")
        for _ in range(appends):
            append(with_command, with_savepoint)
        db.execute("COMMIT")
        done += 1
    tps = done / (time.monotonic() - start)
    return tps, tps * appends


# As the service writes commands (each with an id, so a command row), then as
# `anquan bench store` appends (no command id), then one event without the savepoint.
for variant, with_command in (("service", True), ("bench", False)):
    for appends in (1, 8, 32):
        tps, events = groups(appends, with_command=with_command)
        print("sqlite_store_transaction_%s_%d_events %.0f %.0f" % (variant, appends, tps, events), flush=True)
tps, events = groups(1, with_command=False, with_savepoint=False)
print("sqlite_store_transaction_event_alone_1_events %.0f %.0f" % (tps, events), flush=True)
PY
