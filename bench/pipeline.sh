#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Userspace pipeline throughput: record a live event stream (`trace --record`
# while wrk drives the demo app for SECONDS), then time `timeglass replay` of
# that recording REPEAT times into a fresh database and print events/s as
# `replay --stats` measures them (streaming, then end_run apart). Replay exercises decode,
# reassembly and the SQLite store without BPF, so this measures how fast the
# userspace side can consume events. Needs root (for the recording) and wrk.
#
#   sudo bench/pipeline.sh            # LOAD_SECONDS=10 REPEAT=5 TIMEGLASS=build/timeglass
#   SYNTHETIC=1000000 bench/pipeline.sh   # no root: a generated stream of N exchanges
#                                         # (build/gen_stream) instead of a live recording
#   KEEP=1 ...                        # keep the recording and databases
# Prints every replay and the median events/s.
set -euo pipefail

cd "$(dirname "$0")/.."
SECONDS_LOAD=${LOAD_SECONDS:-10}
REPEAT=${REPEAT:-5}
TG=${TIMEGLASS:-build/timeglass}
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/tg-pipeline.XXXXXX)
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
app_pid=
tracer_pid=

cleanup() {
	local rc=$?
	trap - EXIT
	local pid
	for pid in $tracer_pid $app_pid; do
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$TG" ] || { echo "pipeline.sh: $TG not found: build first" >&2; exit 1; }
if [ -n "${SYNTHETIC:-}" ]; then
	echo "== Generating a synthetic stream of $SYNTHETIC exchanges"
	"$(dirname "$TG")/gen_stream" "$WORK/stream.tgrec" "$SYNTHETIC" 64
else
[ "$(id -u)" -eq 0 ] || { echo "pipeline.sh: needs root (run with sudo), or SYNTHETIC=N" >&2; exit 1; }

"$PY" -m uvicorn app:app --app-dir examples --host 127.0.0.1 --port "$PORT" \
	--loop uvloop --http httptools --log-level warning --no-access-log >"$WORK/app.log" 2>&1 &
app_pid=$!
for _ in $(seq 100); do
	curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/health" && break
	sleep 0.2
done

echo "== Recording: wrk -t1 -c32 -d${SECONDS_LOAD}s on the demo app (pid $app_pid), traced"
"$TG" trace --pid "$app_pid" --db "$WORK/live.db" --record "$WORK/stream.tgrec" \
	2>"$WORK/trace.log" &
tracer_pid=$!
for _ in $(seq 300); do
	grep -q "timeglass: attached" "$WORK/trace.log" && break
	kill -0 "$tracer_pid" 2>/dev/null || { cat "$WORK/trace.log"; exit 1; }
	sleep 0.1
done
wrk -t1 -c32 -d"${SECONDS_LOAD}s" "http://127.0.0.1:$PORT/hello" | grep -E "requests in|Requests/sec"
kill -TERM "$tracer_pid"
wait "$tracer_pid"
tracer_pid=
echo "recording: $(stat -c %s "$WORK/stream.tgrec") bytes;" \
	"live run: $(sqlite3 "$WORK/live.db" 'SELECT events, dropped_events FROM runs' | tr '|' ' ')" \
	"(events dropped_events)"
fi

echo "== Replaying it $REPEAT times"
rates=()
for i in $(seq "$REPEAT"); do
	rm -f "$WORK/replay.db" "$WORK/replay.db-wal" "$WORK/replay.db-shm"
	# --stats: events/s while streaming (decode, reassembly, store writes
	# committed), then the seconds end_run spends building deferred indexes.
	line=$("$TG" replay "$WORK/stream.tgrec" --db "$WORK/replay.db" --stats)
	rate=$(awk '{ for (i = 1; i < NF; i++) if ($i == "events/s") printf "%.0f", $(i + 1) }' <<<"$line")
	echo "  replay $i: $line"
	rates+=("$rate")
done
median=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2) }')
echo "median: $median events/s over $REPEAT replays"
