#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The demo (`make demo`, after the build): start the demo FastAPI app, trace it
# with `timeglass trace --uvicorn --report`, drive it with examples/load.py,
# and print TimeGlass's per-endpoint report. Everything it starts is stopped
# on exit, whatever happens.
#
# Settings (environment): PORT (8000), DURATION (tracing seconds, 20),
# LOAD_SECONDS (15), CONCURRENCY (8), DB (demo.db), TIMEGLASS (build/timeglass).
set -euo pipefail

cd "$(dirname "$0")/.."
PORT=${PORT:-8000}
DURATION=${DURATION:-20}
LOAD_SECONDS=${LOAD_SECONDS:-15}
CONCURRENCY=${CONCURRENCY:-8}
DB=${DB:-demo.db}
TG=${TIMEGLASS:-build/timeglass}
PY=/usr/bin/python3 # Debian's interpreter: it has fastapi, uvicorn, uvloop
LOGDIR=$(mktemp -d /tmp/timeglass-demo.XXXXXX)
SUDO=
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo # tracing needs root (BPF)
fi

app_pid=
tracer_pid=
load_pid=

heading() {
	if [ -t 1 ]; then
		printf '\n\033[1;36m==> %s\033[0m\n' "$*"
	else
		printf '\n==> %s\n' "$*"
	fi
}

die() {
	echo "demo: $*" >&2
	exit 1
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$load_pid" ]; then
		kill -TERM "$load_pid" 2>/dev/null || true
	fi
	if [ -n "$tracer_pid" ] && kill -0 "$tracer_pid" 2>/dev/null; then
		kill -TERM "$tracer_pid" 2>/dev/null || true
		wait "$tracer_pid" 2>/dev/null || true
	fi
	if [ -n "$app_pid" ] && kill -0 "$app_pid" 2>/dev/null; then
		kill -TERM "$app_pid" 2>/dev/null || true
		wait "$app_pid" 2>/dev/null || true
	fi
	if [ "$rc" -ne 0 ]; then
		echo "demo: failed (exit $rc); logs in $LOGDIR" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$TG" ] || die "$TG not found: build first (make)"
[ -x "$PY" ] || die "$PY not found (apt-get install python3-fastapi python3-uvicorn python3-uvloop)"
if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/"; then
	die "something already answers on port $PORT; choose another with PORT=..."
fi

heading "Starting the demo app (uvicorn + FastAPI) on port $PORT"
"$PY" -m uvicorn app:app --app-dir examples --host 127.0.0.1 --port "$PORT" \
	--loop uvloop --http httptools --log-level warning >"$LOGDIR/app.log" 2>&1 &
app_pid=$!
for _ in $(seq 100); do
	if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/health"; then
		break
	fi
	kill -0 "$app_pid" 2>/dev/null || die "the app exited: $(cat "$LOGDIR/app.log")"
	sleep 0.2
done
curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/health" || die "the app does not answer"
echo "app pid $app_pid answers on http://127.0.0.1:$PORT/ (its log: $LOGDIR/app.log)"

heading "Tracing every uvicorn for $DURATION s: $TG trace --uvicorn --duration $DURATION --db $DB --report"
rm -f "$DB" "$DB-wal" "$DB-shm"
$SUDO "$TG" trace --uvicorn --duration "$DURATION" --db "$DB" --report \
	2>"$LOGDIR/trace.log" &
tracer_pid=$!
for _ in $(seq 300); do
	grep -q "timeglass: attached" "$LOGDIR/trace.log" && break
	kill -0 "$tracer_pid" 2>/dev/null || die "the tracer exited: $(cat "$LOGDIR/trace.log")"
	sleep 0.1
done
grep -q "timeglass: attached" "$LOGDIR/trace.log" || die "the tracer did not attach in 30 s"
echo "attached (tracer log: $LOGDIR/trace.log)"

heading "Sending load for $LOAD_SECONDS s: examples/load.py -c $CONCURRENCY"
# In the background + wait, so that a signal to this script is handled at once.
"$PY" examples/load.py --port "$PORT" --concurrency "$CONCURRENCY" --duration "$LOAD_SECONDS" &
load_pid=$!
wait "$load_pid"
load_pid=

heading "Waiting for the tracer to finish and print its report"
rc=0
wait "$tracer_pid" || rc=$?
tracer_pid=
tail -n 3 "$LOGDIR/trace.log"
[ "$rc" -eq 0 ] || die "timeglass trace exited with $rc"

heading "Done"
echo "The requests are in $DB: '$TG report --db $DB' prints the report again;"
echo "'$TG report --db $DB --format json' gives it as JSON."
