#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The demo (`make demo`, after the build): start a throw-away PostgreSQL 15
# cluster (temp dir, free port, trust auth, a small seeded schema), the demo
# FastAPI app on it (DATABASE_URL), trace it with `timeglass trace --uvicorn
# --pg-port PGPORT --report`, drive it with examples/load.py --db, and print
# TimeGlass's report (per endpoint, and the SQL statements). Everything it
# starts is stopped, and the cluster deleted, on exit, whatever happens.
#
# Settings (environment): PORT (8000), DURATION (tracing seconds, 20),
# LOAD_SECONDS (15), CONCURRENCY (8), DB (demo.db), TIMEGLASS (build/timeglass),
# PG_BIN (/usr/lib/postgresql/15/bin: Debian's postgresql-15).
set -euo pipefail

cd "$(dirname "$0")/.."
PORT=${PORT:-8000}
DURATION=${DURATION:-20}
LOAD_SECONDS=${LOAD_SECONDS:-15}
CONCURRENCY=${CONCURRENCY:-8}
DB=${DB:-demo.db}
TG=${TIMEGLASS:-build/timeglass}
PY=/usr/bin/python3 # Debian's interpreter: it has fastapi, uvicorn, asyncpg, psycopg2
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
LOGDIR=$(mktemp -d /tmp/timeglass-demo.XXXXXX)
SUDO=
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo # tracing needs root (BPF)
fi

app_pid=
tracer_pid=
load_pid=
pg_dir= # the cluster's temp dir (owned by postgres): data/, its log, the socket
pg_started=

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
	if [ -n "$pg_started" ]; then
		$SUDO runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$pg_dir/data" -m fast -w stop \
			>/dev/null 2>&1 || true
	fi
	if [ -n "$pg_dir" ]; then
		$SUDO cp "$pg_dir/postgres.log" "$LOGDIR/postgres.log" 2>/dev/null || true
		$SUDO rm -rf "$pg_dir"
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
"$PY" -c 'import asyncpg, psycopg2' 2>/dev/null ||
	die "the demo needs asyncpg and psycopg2 (apt-get install python3-asyncpg python3-psycopg2)"
[ -x "$PG_BIN/initdb" ] || die "$PG_BIN/initdb not found (apt-get install postgresql-15)"
id postgres >/dev/null 2>&1 || die "no 'postgres' user (apt-get install postgresql-15)"
if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/"; then
	die "something already answers on port $PORT; choose another with PORT=..."
fi

heading "Starting PostgreSQL 15 (a throw-away cluster)"
pg_dir=$(mktemp -d /tmp/timeglass-pg.XXXXXX)
$SUDO chown postgres: "$pg_dir"
PGPORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$SUDO runuser -u postgres -- "$PG_BIN/initdb" -D "$pg_dir/data" -U postgres --auth=trust \
	--encoding=UTF8 --no-sync >"$LOGDIR/initdb.log" 2>&1 || die "initdb failed: $(cat "$LOGDIR/initdb.log")"
pg_started=1
$SUDO runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/postgres.log" -w -t 30 \
	-o "-p $PGPORT -k $pg_dir -c listen_addresses=127.0.0.1" start >"$LOGDIR/pg_ctl.log" 2>&1 ||
	die "PostgreSQL did not start: $($SUDO cat "$pg_dir/postgres.log" 2>/dev/null)"
psql() {
	"$PG_BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -X -q -v ON_ERROR_STOP=1 "$@"
}
psql -d postgres -c "CREATE DATABASE demo" >/dev/null || die "CREATE DATABASE failed"
psql -d demo >/dev/null <<'SQL' || die "the demo schema failed"
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10, 2) NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, item_id int NOT NULL REFERENCES items, qty int NOT NULL);
INSERT INTO items (name, price) VALUES ('hammer', 12.50), ('screwdriver', 4.25), ('wrench', 9.00),
	('towel', 3.50), ('pliers', 7.75), ('saw', 19.90), ('drill', 59.00), ('tape', 2.10);
INSERT INTO orders (item_id, qty) VALUES (1, 2), (3, 1), (2, 5), (8, 3), (5, 1), (7, 1), (4, 4), (6, 2);
SQL
export DATABASE_URL="postgresql://postgres@127.0.0.1:$PGPORT/demo"
echo "PostgreSQL listens on 127.0.0.1:$PGPORT ($DATABASE_URL; data in $pg_dir, deleted on exit)"

heading "Starting the demo app (uvicorn + FastAPI) on port $PORT"
# uvloop, as `uvicorn[standard]` installs it: SQL statements are attributed on it too (the
# uvloop write probe, docs/postgres.md).
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

heading "Tracing every uvicorn for $DURATION s: $TG trace --uvicorn --pg-port $PGPORT --duration $DURATION --db $DB --report"
rm -f "$DB" "$DB-wal" "$DB-shm"
$SUDO "$TG" trace --uvicorn --pg-port "$PGPORT" --duration "$DURATION" --db "$DB" --report \
	2>"$LOGDIR/trace.log" &
tracer_pid=$!
for _ in $(seq 300); do
	grep -q "timeglass: attached" "$LOGDIR/trace.log" && break
	kill -0 "$tracer_pid" 2>/dev/null || die "the tracer exited: $(cat "$LOGDIR/trace.log")"
	sleep 0.1
done
grep -q "timeglass: attached" "$LOGDIR/trace.log" || die "the tracer did not attach in 30 s"
echo "attached (tracer log: $LOGDIR/trace.log)"

heading "Sending load for $LOAD_SECONDS s: examples/load.py --db -c $CONCURRENCY"
# In the background + wait, so that a signal to this script is handled at once.
"$PY" examples/load.py --port "$PORT" --db --concurrency "$CONCURRENCY" --duration "$LOAD_SECONDS" &
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
