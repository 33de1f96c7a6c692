#!/usr/bin/env bash
# Live catch-up into PostgreSQL read models (issue 20): empties the read models of a store that
# holds a log (e.g. `anquan demo --database URL`), starts `anquan serve` on it and times its
# runner folding the whole log into them, keeping the query indexes up to date, as a node does
# after its read models were lost or when it starts on a copied log.
#
#   scripts/bench-postgres-catch-up.sh URL DATA_DIR [BINARY]
#
# Prints the serve's own figure ("projections caught up with the log", elapsed_ms from its
# first catch-up sample), the wall time from the process's start to that line, the log's
# events and the rate, and serve's peak RSS. The event log and its bookkeeping are kept; every
# other table is dropped and the projections' checkpoints, layouts and leases are emptied.
set -euo pipefail

url=${1:?usage: $0 URL DATA_DIR [BINARY]}
data_dir=${2:?usage: $0 URL DATA_DIR [BINARY]}
binary=${3:-target/release/anquan}

keep="'event_log','event_log_head','event_commands','personal_data_keys','store_schema_version',\
'projection_checkpoints','projection_layouts','projection_leases'"
psql "$url" -qAt -v ON_ERROR_STOP=1 <<SQL
DO \$\$
DECLARE t text;
BEGIN
  FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT IN ($keep) LOOP
    EXECUTE format('DROP TABLE %I CASCADE', t);
  END LOOP;
  FOREACH t IN ARRAY ARRAY['projection_checkpoints', 'projection_layouts', 'projection_leases'] LOOP
    IF to_regclass(t) IS NOT NULL THEN
      EXECUTE format('DELETE FROM %I', t);
    END IF;
  END LOOP;
END \$\$;
SQL
events=$(psql "$url" -qAtc "SELECT count(*) FROM event_log")

log=$(mktemp)
started=$(date +%s.%N)
/usr/bin/time -v -o "$log.time" "$binary" --log-format json serve --database "$url" --data-dir "$data_dir" \
    --listen 127.0.0.1:0 --graphiql false 2>"$log" &
pid=$!
line=""
for _ in $(seq 1 36000); do
    line=$(grep -m1 '"projections caught up with the log"' "$log" || true)
    [ -n "$line" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
ended=$(date +%s.%N)
# /usr/bin/time's child is serve: stop it through its parent's process group member.
pkill -TERM -P "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
if [ -z "$line" ]; then
    echo "serve did not report catching up; its log: $log" >&2
    exit 1
fi
elapsed_ms=$(printf '%s' "$line" | python3 -c 'import json, sys; print(json.load(sys.stdin)["fields"]["elapsed_ms"])')
python3 - "$events" "$elapsed_ms" "$started" "$ended" <<'PY'
import sys
events, elapsed_ms, started, ended = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
wall = ended - started
print(f"events {events}; serve's elapsed {elapsed_ms / 1000:.1f} s, {events / (elapsed_ms / 1000):,.0f} events/s; "
      f"wall from start {wall:.1f} s, {events / wall:,.0f} events/s")
PY
grep -E "Maximum resident" "$log.time" | sed 's/^\s*/serve /'
if [ -n "${KEEP_LOG:-}" ]; then cp "$log" "$KEEP_LOG"; fi
rm -f "$log" "$log.time"
