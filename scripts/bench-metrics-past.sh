#!/usr/bin/env bash
# The metrics at past instants over HTTP (BENCHMARKS.md, "Past instants from the history"):
#
#   scripts/bench-metrics-past.sh DATA_DIR PORT [COUNT]
#
# Starts `target/release/anquan serve` (or $ANQUAN_BIN) on DATA_DIR, waits for the read-model
# leader's "metrics history walked" log line, then asks `cityMetrics` + `allTownMetrics` (all
# 78 metrics of the city and every town) at COUNT (default 200) random instants between $FROM
# and $TO (default 2018-01-01 and 2019-12-31, the demo's two years), each a distinct instant so
# none is served from the cache of past computations, and
# prints the request times' p50, p99 and max and how many answers came from the history or the
# files (`anquan_metrics_past_answers_total`). Three requests asked as soon as the read models
# have caught up with the log, while the history is still being walked, show what a computation
# from every file costs in the same run (beside the walk, on the same cores).
# With the history walked, it waits for "metrics history summed by day" too (DAYS=0: a binary
# without the sums by day). WALKED=1: the store's history is already walked (a second binary on
# the same store); the walk and the three requests from the files are skipped.
# PREVIOUS=1 asks for previousValue and change too (the month-ago instant is then looked up as
# well); NOW=N asks the same N times at "now" (no asOf: the watcher's cache, the response alone).
# Also prints the history's rows and size. The service's log goes to ${TMPDIR:-/tmp}/serve-past.log.
set -euo pipefail
DIR=$1
PORT=$2
COUNT=${3:-200}
BIN=${ANQUAN_BIN:-target/release/anquan}
LOG=${TMPDIR:-/tmp}/serve-past.log
TOKEN=$("$BIN" token --role city_admin --data-dir "$DIR" 2>/dev/null)
"$BIN" serve --log-format json --data-dir "$DIR" --listen "127.0.0.1:$PORT" >"$LOG" 2>&1 &
PID=$!
trap 'kill -TERM "$PID" 2>/dev/null || true' EXIT
FIELDS="code numerator denominator"
if [ "${PREVIOUS:-0}" = 1 ]; then
  FIELDS="$FIELDS previousValue change"
fi
ask() {
  local query at
  at=$([ "$1" = now ] && echo null || echo "\"$1\"")
  query=$(printf '{"query":"query($at: DateTime) { cityMetrics(asOf: $at) { metrics { %s } } allTownMetrics(asOf: $at) { town metrics { %s } } }","variables":{"at":%s}}' "$FIELDS" "$FIELDS" "$at")
  curl -s -o /dev/null -w '%{time_total}\n' -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d "$query" "http://127.0.0.1:$PORT/graphql"
}
until curl -fs -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null; do
  kill -0 "$PID" || { cat "$LOG"; exit 1; }
  sleep 0.2
done
# A serve after `anquan demo` first folds the log into its read models (files asked before
# that would be the few folded so far); the walk starts once they have caught up.
if [ "${WALKED:-0}" = 1 ]; then
  sleep 10
else
  until grep -q '"message":"walking every enterprise'"'"'s metrics history"' "$LOG" 2>/dev/null; do
    kill -0 "$PID" || { cat "$LOG"; exit 1; }
    sleep 0.5
  done
  for day in 01 02 03; do
    printf 'from the files (while the history is walked): %s s\n' "$(ask "2019-06-${day}T00:00:00Z")"
  done
  curl -s "http://127.0.0.1:$PORT/metrics" | grep '^anquan_metrics_past_answers_total' || true
  until grep -q '"message":"metrics history walked"' "$LOG" 2>/dev/null; do
    kill -0 "$PID" || { cat "$LOG"; exit 1; }
    sleep 0.5
  done
  grep -o '"message":"metrics history walked[^}]*' "$LOG"
fi
if [ "${DAYS:-1}" = 1 ]; then
  until grep -q '"message":"metrics history summed by day"' "$LOG" 2>/dev/null; do
    kill -0 "$PID" || { cat "$LOG"; exit 1; }
    sleep 0.5
  done
  grep -o '"message":"metrics history summed by day[^}]*' "$LOG"
fi
FROM=$(date -u -d "${FROM:-2018-01-01}" +%s)
TO=$(date -u -d "${TO:-2019-12-31}" +%s)
TIMES=${TMPDIR:-/tmp}/past-times.txt
: >"$TIMES"
for i in $(seq 1 "$COUNT"); do
  AT=$(date -u -d "@$((FROM + (RANDOM * 32768 + RANDOM) % (TO - FROM)))" +%Y-%m-%dT%H:%M:%S.${i}Z)
  ask "$AT" >>"$TIMES"
done
sort -n "$TIMES" | awk '{ t[NR] = $1 } END { printf "history: %d requests, p50 %.4f s, p99 %.4f s, max %.4f s\n", NR, t[int(NR * 0.5)], t[int(NR * 0.99)], t[NR] }'
if [ "${NOW:-0}" -gt 0 ]; then
  : >"$TIMES.now"
  for _ in $(seq 1 "$NOW"); do ask now >>"$TIMES.now"; done
  sort -n "$TIMES.now" | awk '{ t[NR] = $1 } END { printf "now (the cache): %d requests, p50 %.4f s, p99 %.4f s, max %.4f s\n", NR, t[int(NR * 0.5)], t[int(NR * 0.99)], t[NR] }'
fi
curl -s "http://127.0.0.1:$PORT/metrics" | grep '^anquan_metrics_past_answers_total'
if [ -f "$DIR/anquan.sqlite" ]; then
  sqlite3 "$DIR/anquan.sqlite" "SELECT count(*), count(DISTINCT enterprise_id), sum(length(contribution)) FROM metrics_history" |
    awk -F'|' '{ printf "metrics_history: %d rows, %d enterprises, %.1f MiB of contributions\n", $1, $2, $3 / 1048576 }'
  sqlite3 "$DIR/anquan.sqlite" "SELECT count(*), count(DISTINCT day), count(DISTINCT town), sum(length(sums)) FROM metrics_history_days" 2>/dev/null |
    awk -F'|' '{ printf "metrics_history_days: %d rows, %d days, %d towns, %.1f MiB of sums\n", $1, $2, $3, $4 / 1048576 }' || true
fi
grep -E "VmHWM|VmRSS" "/proc/$PID/status" | tr -s ' \t' ' ' | tr '\n' ' '
echo
