#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Browser tests of the dashboard: install the pinned playwright-core (npm ci,
# no browser download: Debian's /usr/bin/chromium is used) and run
# dashboard.test.mjs with node's test runner.
#
#   TG_DB=FILE [TG_URL=http://127.0.0.1:PORT/] tests/browser/run.sh
#
# Without TG_URL, starts `build/timeglass serve --db "$TG_DB"` on a free
# loopback port (TIMEGLASS overrides the binary) and stops it afterwards.
# Screenshots go to tests/artifacts/browser/.
set -euo pipefail
cd "$(dirname "$0")"
: "${TG_DB:?TG_DB must name a database made by timeglass trace}"
TG_DB=$(realpath "$TG_DB")
export TG_DB

[ -x /usr/bin/chromium ] || { echo "browser tests: /usr/bin/chromium missing (apt-get install chromium)" >&2; exit 1; }
npm ci --no-audit --no-fund --loglevel=error

serve_pid=
cleanup() {
	if [ -n "$serve_pid" ]; then
		kill -TERM "$serve_pid" 2>/dev/null || true
		wait "$serve_pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT

if [ -z "${TG_URL:-}" ]; then
	tg=${TIMEGLASS:-../../build/timeglass}
	port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	"$tg" serve --db "$TG_DB" --listen "127.0.0.1:$port" &
	serve_pid=$!
	export TG_URL="http://127.0.0.1:$port/"
	for _ in $(seq 50); do
		curl -sf -o /dev/null "${TG_URL}api/status" && break
		kill -0 "$serve_pid" 2>/dev/null || { echo "browser tests: timeglass serve exited" >&2; exit 1; }
		sleep 0.1
	done
fi

mkdir -p ../artifacts/browser
# live.test.mjs traces a real server: only as root (the tracer needs it)
if [ -z "${TG_LIVE:-}" ] && [ "$(id -u)" -eq 0 ]; then
	export TG_LIVE=1
fi
export TIMEGLASS=${TIMEGLASS:-$(realpath ../../build/timeglass)}
node --test --test-reporter=spec .
