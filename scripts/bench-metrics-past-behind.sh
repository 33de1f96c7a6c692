#!/usr/bin/env bash
# Past instants while the metrics history is behind the read models (BENCHMARKS.md, "A query
# that does not wait for the history"):
#
#   scripts/bench-metrics-past-behind.sh DATA_DIR PORT [COUNT] [BEHIND]
#
# On a SQLite DATA_DIR whose history is walked (run scripts/bench-metrics-past.sh on it first),
# rewinds the history's position BEHIND events (default 10,000: what the read models applied
# during the walk of the scale-10 demo), starts `target/release/anquan serve` (or $ANQUAN_BIN)
# and asks `cityMetrics` + `allTownMetrics` at COUNT (default 60) random distinct instants of
# 2018-2019 as soon as it answers, while its keeper walks the touched enterprises again. Prints
# the requests' p50, p99 and max, where the answers came from
# (`anquan_metrics_past_answers_total`) and when the keeper's pass ended. The service's log
# goes to ${TMPDIR:-/tmp}/serve-behind.log.
set -euo pipefail
DIR=$1
PORT=$2
COUNT=${3:-60}
BEHIND=${4:-10000}
BIN=${ANQUAN_BIN:-target/release/anquan}
LOG=${TMPDIR:-/tmp}/serve-behind.log
TIMES=${TMPDIR:-/tmp}/behind-times.txt
sqlite3 "$DIR/anquan.sqlite" "UPDATE metrics_history_state SET commit_position = commit_position - $BEHIND, \
  prepare_position = prepare_position - $BEHIND; UPDATE projection_checkpoints SET commit_position = \
  commit_position - $BEHIND, prepare_position = prepare_position - $BEHIND WHERE projection = 'metrics_history'"
TOKEN=$("$BIN" token --role city_admin --data-dir "$DIR" 2>/dev/null)
"$BIN" serve --log-format json --data-dir "$DIR" --listen "127.0.0.1:$PORT" >"$LOG" 2>&1 &
PID=$!
trap 'kill -TERM "$PID" 2>/dev/null || true' EXIT
until curl -fs -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null; do
  kill -0 "$PID" || { cat "$LOG"; exit 1; }
  sleep 0.2
done
FROM=$(date -u -d 2018-01-01 +%s)
TO=$(date -u -d 2019-12-31 +%s)
: >"$TIMES"
for i in $(seq 1 "$COUNT"); do
  AT=$(date -u -d "@$((FROM + (RANDOM * 32768 + RANDOM) % (TO - FROM)))" +%Y-%m-%dT%H:%M:%S.${i}Z)
  query=$(printf '{"query":"query($at: DateTime) { cityMetrics(asOf: $at) { metrics { code numerator denominator } } allTownMetrics(asOf: $at) { town metrics { code numerator denominator } } }","variables":{"at":"%s"}}' "$AT")
  curl -s -o /dev/null -w '%{time_total}\n' -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d "$query" "http://127.0.0.1:$PORT/graphql" >>"$TIMES"
done
sort -n "$TIMES" | awk '{ t[NR] = $1 } END { printf "behind: %d requests, p50 %.4f s, p99 %.4f s, max %.4f s\n", NR, t[int(NR * 0.5)], t[int(NR * 0.99)], t[NR] }'
curl -s "http://127.0.0.1:$PORT/metrics" | grep '^anquan_metrics_past_answers_total'
grep -o '"timestamp":"[^"]*","level":"[A-Z]*","fields":{"message":"metrics history walked on[^}]*' "$LOG" || true
grep -E "VmHWM" "/proc/$PID/status"
