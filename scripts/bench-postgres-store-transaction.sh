#!/usr/bin/env bash
# What PostgreSQL itself takes for the store's own write, without anquan's client: the ceiling
# beside `scripts/bench-postgres-ceiling.sh` (a bare row) that says how much of the gap between
# the store and a bare row is the server's work on the store's schema and how much is anquan's.
#
#   scripts/bench-postgres-store-transaction.sh ADMIN_URL [SECONDS] [ANQUAN]
#
# It makes a fresh database, lets `ANQUAN verify --database` (default: target/release/anquan)
# create the store's schema in it (the real migrations, nothing copied), then runs with pgbench
# (1 client, prepared) statements shaped as the committer's one statement from memory
# (`WRITE_REMEMBERED_SQL` in anquan-event-store-postgres): the head row's move, N events of
# ~1 KB JSON into `event_log` with all its columns and indexes, one `pg_notify`, and with a
# command row per event as the service writes commands (`service`) or without, as
# `anquan bench store` appends (`bench`); then `bench` without the notify (`no_notify`) and the
# events alone with positions from a sequence (`events_alone`), so each part's cost can be read
# off. N = 1, 8 and 32 (a group of one append, of 8 writers, of 32 writers), each SECONDS long
# (default 10). One client, as the store commits one group at a time: events/s = N x
# transactions/s is the most a node can append in groups of N. Streams, versions and ids are
# made as the benchmark's are (1,000 streams round robin, ids ordered in time).
# A session listens on the store's channel meanwhile, as the store's own listener does.
#
# Output: one line per figure, `name transactions_per_s events_per_s`.
set -euo pipefail

url=${1:?usage: $0 ADMIN_URL [SECONDS] [ANQUAN]}
seconds=${2:-10}
anquan=${3:-target/release/anquan}
PG_BIN=${PG_BIN:-$(pg_config --bindir)}

name="anquan_transaction_$$_$(date +%s)"
db_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$url" "$name")
scratch=$(mktemp -d "${TMPDIR:-/tmp}/anquan-transaction.XXXXXX")
listener=
cleanup() {
    [ -n "$listener" ] && kill "$listener" 2>/dev/null || true
    psql -q "$url" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf -- "$scratch"
}
trap cleanup EXIT

psql -q "$url" -c "CREATE DATABASE $name" >/dev/null
"$anquan" verify --database "$db_url" >/dev/null
psql -q "$db_url" -c "SELECT 1 FROM event_log_head" >/dev/null
# A session listening on the store's channel, as every open store has, taking each notification
# as it comes (psql prints them after each command).
(echo "LISTEN anquan_events;"; while sleep 0.1; do echo "SELECT 1;"; done) | psql -q "$db_url" >/dev/null 2>&1 &
listener=$!

# The parts of the statement; each variant joins some of them. Positions come from the head
# row, as the committer's do; streams and versions as the benchmark's (1,000 streams, round
# robin); ids ordered in time, as the store's UUIDv7 are (here made from the position).
advance="advanced AS (UPDATE event_log_head SET position = position + :n WHERE id RETURNING position)"
event_columns="position, stream_id, version, event_id, event_type, schema_version, data,
               occurred_at, recorded_at, actor, correlation_id, causation_id, command_id, hash"
# The group's positions p, one row each, after the head row's position before the move.
positions="(SELECT a.position - :n + g AS p FROM advanced a, generate_series(1, :n) g) e"
# The stream and version of position p; its command id.
stream="'enterprise-' || lpad((p % 1000)::text, 4, '0')"
version="p / 1000"
command_id="('2' || lpad(to_hex(p), 31, '0'))::uuid"
# One event's values, from its position p.
event_values="p, $stream, $version, lpad(to_hex(p), 32, '0')::uuid,
           'DocumentUploaded', 1, ('{\"pad\":\"' || repeat('x', 1060) || '\"}')::json, now(), now(),
           '{\"role\":\"bench\"}'::json, ('1' || lpad(to_hex(p), 31, '0'))::uuid, NULL, COMMAND_ID,
           sha256(int8send(p))"
events="inserted AS (
    INSERT INTO event_log ($event_columns)
    SELECT $event_values FROM $positions
)"
commands="commands AS (
    INSERT INTO event_commands (command_id, stream_id, first_version, last_version, last_position, digest)
    SELECT $command_id, $stream, $version, $version, p, sha256(int8send(p)) FROM $positions
)"
notify="pg_notify('anquan_events', (SELECT position FROM advanced)::text)"
guard="1 / (SELECT count(*)::int FROM advanced)"
with_command=${events/COMMAND_ID/$command_id}
without_command=${events/COMMAND_ID/NULL}
# As the service writes a command (it has an id, so a command row).
cat >"$scratch/service.sql" <<SQL
WITH $advance, $with_command, $commands
SELECT $notify, $guard;
SQL
# As `anquan bench store` writes (its appends carry no command id).
cat >"$scratch/bench.sql" <<SQL
WITH $advance, $without_command
SELECT $notify, $guard;
SQL
cat >"$scratch/no_notify.sql" <<SQL
WITH $advance, $without_command
SELECT $guard;
SQL
# The events alone: positions from a sequence instead of the head row.
events_alone=${event_values/COMMAND_ID/NULL}
cat >"$scratch/events_alone.sql" <<SQL
INSERT INTO event_log ($event_columns)
SELECT $events_alone FROM (SELECT nextval('transaction_positions') AS p FROM generate_series(1, :n)) e;
SQL
psql -q "$db_url" -c "CREATE SEQUENCE transaction_positions START 1000000000" >/dev/null

for variant in service bench no_notify events_alone; do
    for n in 1 8 32; do
        "$PG_BIN/pgbench" -n -M prepared -D n="$n" -f "$scratch/$variant.sql" -c 1 -j 1 -T "$seconds" "$db_url" \
            >"$scratch/pgbench.out" 2>&1 || true
        tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$scratch/pgbench.out")
        if [ -z "$tps" ] || grep -qi 'error' "$scratch/pgbench.out"; then
            echo "pgbench failed on $variant with $n events:" >&2
            grep -i 'error' "$scratch/pgbench.out" | head -3 >&2
            exit 1
        fi
        events_per_s=$(python3 -c 'import sys; print(round(float(sys.argv[1]) * int(sys.argv[2])))' "$tps" "$n")
        echo "postgres_store_transaction_${variant}_${n}_events ${tps} ${events_per_s}"
    done
done
