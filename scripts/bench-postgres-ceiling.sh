#!/usr/bin/env bash
# The raw ceilings beside `anquan bench store --backend postgres`, to be run in the same session
# on the same cluster: what PostgreSQL itself commits with the store's durability, without
# anquan.
#
#   scripts/bench-postgres-ceiling.sh ADMIN_URL [SECONDS] [DATA_DIR]
#
# - single-row transactions/s of ~1 KB JSON rows into a table with a unique (stream, version)
#   index, as `event_log` has, with 1, 8 and 32 clients (pgbench, prepared statements, each
#   run SECONDS long, default 20);
# - the disk's fdatasync rate (pg_test_fsync, 8 KiB writes) in DATA_DIR, which should be the
#   cluster's data directory or at least on its disk (default: a temporary directory in
#   ${TMPDIR:-/tmp}).
#
# It makes a fresh database for the run and drops it afterwards. Output: one line per figure,
# `name value unit`.
set -euo pipefail

url=${1:?usage: $0 ADMIN_URL [SECONDS] [DATA_DIR]}
seconds=${2:-20}
data_dir=${3:-}
PG_BIN=${PG_BIN:-$(pg_config --bindir)}

name="anquan_ceiling_$$_$(date +%s)"
db_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$url" "$name")
scratch=$(mktemp -d "${TMPDIR:-/tmp}/anquan-ceiling.XXXXXX")
cleanup() {
    psql -q "$url" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf -- "$scratch"
}
trap cleanup EXIT

psql -q "$url" -c "CREATE DATABASE $name" >/dev/null
psql -q "$db_url" >/dev/null <<'SQL'
CREATE TABLE ceiling_rows (
    stream_id TEXT NOT NULL,
    version   BIGINT NOT NULL,
    data      JSON NOT NULL,
    UNIQUE (stream_id, version)
);
CREATE SEQUENCE ceiling_version;
SQL
cat >"$scratch/insert.sql" <<'SQL'
INSERT INTO ceiling_rows (stream_id, version, data)
VALUES ('stream-' || :client_id, nextval('ceiling_version'), json_build_object('pad', repeat('x', 1000)));
SQL

for clients in 1 8 32; do
    tps=$("$PG_BIN/pgbench" -n -M prepared -f "$scratch/insert.sql" -c "$clients" -j "$clients" -T "$seconds" "$db_url" 2>/dev/null |
        sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    echo "single_row_transactions_${clients}_clients ${tps} per_s"
done

sync_dir=${data_dir:-$scratch}
fdatasync=$("$PG_BIN/pg_test_fsync" -s 3 -f "$sync_dir/anquan_ceiling_fsync_test" 2>/dev/null |
    sed -n 's/^ *fdatasync *\([0-9.,]*\) ops\/sec.*/\1/p' | head -1 | tr -d ,)
rm -f "$sync_dir/anquan_ceiling_fsync_test"
echo "fdatasync_8k ${fdatasync} per_s"
