#!/usr/bin/env bash
# How late "now" shows a calendar instant (a year's start: every enterprise may change at once)
# after a restart that loaded the persisted figures (BENCHMARKS.md, issue 19):
#
#   scripts/bench-metrics-calendar.sh DATA_DIR PORT LEAD_SECONDS [INSTANT]
#
# Needs a binary built with `cargo build --release -p anquan-cli --features test-clock`
# ($ANQUAN_BIN, default target/release/anquan). Sets the service clock LEAD_SECONDS before
# INSTANT (default: the next local new year in Asia/Shanghai, as UTC), starts `anquan serve`
# on DATA_DIR, waits for the metrics watcher's "metrics computed ahead swapped in" (its
# `late_ms` is how long after the instant the figures at it were published, `computed_ms` how
# long computing them ahead took), prints the watcher's `metrics …` lines and the process's
# VmHWM, and stops it. The service's log goes to ${TMPDIR:-/tmp}/serve-calendar-PORT.log.
set -euo pipefail
DIR=$1
PORT=$2
LEAD=$3
INSTANT=${4:-$(TZ=Asia/Shanghai date -u -d "$(TZ=Asia/Shanghai date +%Y)-12-31 16:00:00 UTC" +%Y-%m-%dT%H:%M:%SZ)}
BIN=${ANQUAN_BIN:-target/release/anquan}
LOG=${TMPDIR:-/tmp}/serve-calendar-$PORT.log
CLOCK=$(mktemp)
trap 'rm -f "$CLOCK"' EXIT
echo $(($(date -d "$INSTANT" +%s) - LEAD - $(date +%s))) >"$CLOCK"
export ANQUAN_TEST_CLOCK=$CLOCK ANQUAN_TEST_MODE=1
echo "calendar: the service clock starts at $(date -u -d "@$(($(date -d "$INSTANT" +%s) - LEAD))" +%FT%TZ), $LEAD s before $INSTANT"
"$BIN" serve --log-format json --data-dir "$DIR" --listen "127.0.0.1:$PORT" >"$LOG" 2>&1 &
PID=$!
DEADLINE=$(($(date +%s) + LEAD + 3600))
until grep -q 'metrics computed ahead swapped in' "$LOG"; do
  if [ "$(date +%s)" -gt "$DEADLINE" ] || ! kill -0 "$PID" 2>/dev/null; then
    echo "calendar: no swap within an hour of the instant" >&2
    break
  fi
  sleep 1
done
grep -E "VmHWM|VmRSS|RssAnon|RssFile" "/proc/$PID/status" | tr -s ' \t' ' ' | tr '\n' ' '
echo
kill -TERM "$PID"
wait "$PID" || true
jq -c 'select(.fields.message | startswith("metrics")) | {timestamp} + .fields' "$LOG" || true
