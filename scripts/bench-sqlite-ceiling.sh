#!/usr/bin/env bash
# The raw ceilings beside `anquan bench store --backend sqlite`, to be run in the same session
# on the same disk: what SQLite itself commits with the store's durability, without anquan.
#
#   scripts/bench-sqlite-ceiling.sh [SECONDS] [DIR]
#
# - single-row transactions/s of ~1 KB JSON rows into a WAL table with a unique
#   (stream, version) index, as `event_log` has, `synchronous = FULL` (the store's default),
#   one connection, one prepared statement, each transaction `BEGIN IMMEDIATE; INSERT; COMMIT`;
# - the same rows 100 to a transaction (phase B's shape; one `executemany`), rows/s;
# - the disk's fdatasync rate: 8 KiB written and fdatasync'd in a loop, as pg_test_fsync does.
#
# DIR must be on the disk being measured (default: a temporary directory in ${TMPDIR:-/tmp}).
# Each figure runs SECONDS long (default 10). Python's sqlite3 module drives SQLite (its own
# per-statement cost is a few microseconds, beside a commit's fsync). Output: one line per
# figure, `name value unit`.
set -euo pipefail

seconds=${1:-10}
dir=${2:-}
scratch=$(mktemp -d "${dir:-${TMPDIR:-/tmp}}/anquan-sqlite-ceiling.XXXXXX")
trap 'rm -rf -- "$scratch"' EXIT

python3 - "$scratch" "$seconds" <<'PY'
import json, os, sqlite3, sys, time

scratch, seconds = sys.argv[1], float(sys.argv[2])
row = json.dumps({"pad": "x" * 1000})


def open_db(name):
    db = sqlite3.connect(os.path.join(scratch, name), isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute(
        "CREATE TABLE ceiling_rows (position INTEGER PRIMARY KEY, stream_id TEXT NOT NULL, "
        "version INTEGER NOT NULL, data TEXT NOT NULL, UNIQUE (stream_id, version))"
    )
    return db


def single_rows():
    db = open_db("single.db")
    done, version, deadline = 0, 0, time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < deadline:
        version += 1
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO ceiling_rows (stream_id, version, data) VALUES (?, ?, ?)",
                   ("stream-%d" % (version % 1000), version, row))
        db.execute("COMMIT")
        done += 1
    return done / (time.monotonic() - start)


def batched_rows(per_transaction=100):
    db = open_db("batched.db")
    done, version, deadline = 0, 0, time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < deadline:
        rows = [("stream-%d" % (version // per_transaction), version + i, row) for i in range(per_transaction)]
        version += per_transaction
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO ceiling_rows (stream_id, version, data) VALUES (?, ?, ?)", rows)
        db.execute("COMMIT")
        done += per_transaction
    return done / (time.monotonic() - start)


def fdatasyncs():
    path = os.path.join(scratch, "fsync_test")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    block = b"\0" * 8192
    os.write(fd, block)
    os.fsync(fd)
    done, deadline = 0, time.monotonic() + min(seconds, 5)
    start = time.monotonic()
    while time.monotonic() < deadline:
        os.pwrite(fd, block, 0)
        os.fdatasync(fd)
        done += 1
    os.close(fd)
    return done / (time.monotonic() - start)


print("sqlite_single_row_transactions_1_connection %.0f per_s" % single_rows(), flush=True)
print("sqlite_rows_in_transactions_of_100 %.0f per_s" % batched_rows(), flush=True)
print("fdatasync_8k %.0f per_s" % fdatasyncs(), flush=True)
print("sqlite_version %s" % sqlite3.sqlite_version, flush=True)
PY
