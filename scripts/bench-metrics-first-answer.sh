#!/usr/bin/env bash
# Time from `anquan serve` start to its first `townMetrics` answer, then its CPU with no traffic
# and its memory (BENCHMARKS.md, "Town metrics at `serve` start"):
#
#   scripts/bench-metrics-first-answer.sh DATA_DIR PORT LABEL
#
# Starts `target/release/anquan serve` (or $ANQUAN_BIN) on DATA_DIR, polls
# `townMetrics(town: "许村")` every 100 ms from the moment it spawns the process until an answer
# carries figures, waits $SETTLE seconds (default 20), reads the process's CPU time
# (/proc/PID/stat utime + stime) over 60 s with no request, VmHWM and VmRSS, stops it, and
# prints the watcher's `metrics …` log lines. The service's log goes to
# ${TMPDIR:-/tmp}/serve-LABEL.log.
set -euo pipefail
DIR=$1
PORT=$2
LABEL=$3
BIN=${ANQUAN_BIN:-target/release/anquan}
LOG=${TMPDIR:-/tmp}/serve-$LABEL.log
TOKEN=$("$BIN" token --role city_admin --data-dir "$DIR" 2>/dev/null)
START=$(date +%s.%N)
"$BIN" serve --log-format json --data-dir "$DIR" --listen "127.0.0.1:$PORT" >"$LOG" 2>&1 &
PID=$!
QUERY='{"query":"{ townMetrics(town: \"许村\") { metrics { code value } } }"}'
while true; do
  ANSWER=$(curl -s -m 30 -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d "$QUERY" "http://127.0.0.1:$PORT/graphql" 2>/dev/null || true)
  if echo "$ANSWER" | jq -e '.data.townMetrics.metrics | length > 0' >/dev/null 2>&1; then
    break
  fi
  sleep 0.1
done
END=$(date +%s.%N)
echo "$LABEL: first townMetrics answer after $(echo "$END - $START" | bc) s"
sleep "${SETTLE:-20}"
CPU0=$(awk '{print $14 + $15}' "/proc/$PID/stat")
sleep 60
CPU1=$(awk '{print $14 + $15}' "/proc/$PID/stat")
echo "$LABEL: CPU over 60 s with no traffic: $(echo "scale=2; ($CPU1 - $CPU0) / $(getconf CLK_TCK)" | bc) s"
grep -E "VmHWM|VmRSS|RssAnon|RssFile" "/proc/$PID/status" | tr -s ' \t' ' ' | tr '\n' ' '
echo
kill -TERM "$PID"
wait "$PID" || true
grep -o '"message":"metrics[^}]*' "$LOG" || true
