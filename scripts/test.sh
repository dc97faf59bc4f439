#!/usr/bin/env bash
# Run the test suites: unit (cmocka, under ASan/UBSan), kernel (the BPF
# programs loaded for real, root), fuzz (libFuzzer, a short run per target),
# e2e (pytest, real uvicorn + FastAPI, root), browser (the dashboard in
# headless chromium on a real trace of the demo), lint (clang-format, cppcheck).
# Usage: scripts/test.sh [unit|kernel|fuzz|e2e|browser|lint]...
# (default: all of them)
set -euo pipefail
cd "$(dirname "$0")/.."

SUITES=("$@")
[ ${#SUITES[@]} -eq 0 ] && SUITES=(lint unit kernel fuzz e2e browser)
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
passed=0
failed=0
result() { # name status
	if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "== $1: ok"; else failed=$((failed + 1)); echo "== $1: FAILED"; fi
}

for s in "${SUITES[@]}"; do
	case "$s" in
	unit)
		echo "== unit tests (cmocka, ASan + UBSan)"
		[ -f build-san/build.ninja ] || meson setup build-san -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
		st=0
		ninja -C build-san >build-san/ninja.log 2>&1 || { st=$?; grep -E "error|FAILED" build-san/ninja.log | head -20; }
		[ $st -ne 0 ] || meson test -C build-san --suite unit --print-errorlogs || st=$?
		result unit $st
		;;
	fuzz)
		echo "== fuzz (libFuzzer, ${FUZZ_SECONDS}s per target)"
		[ -f build-fuzz/build.ninja ] || CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
		st=0
		ninja -C build-fuzz >build-fuzz/ninja.log 2>&1 || { st=$?; grep -E "error|FAILED" build-fuzz/ninja.log | head -20; }
		mkdir -p tests/artifacts/fuzz
		for f in build-fuzz/tests/fuzz_*; do
			[ $st -eq 0 ] || break
			[ -f "$f" ] && [ -x "$f" ] || continue # skip meson's fuzz_*.p object dirs
			name=$(basename "$f")
			corpus=tests/fuzz/corpus/${name#fuzz_}
			work=$(mktemp -d)
			[ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
			echo "-- $name"
			"$f" -max_total_time="$FUZZ_SECONDS" -artifact_prefix=tests/artifacts/fuzz/ "$work" 2>&1 | tail -3 || st=$?
			rm -rf "$work"
		done
		result fuzz $st
		;;
	kernel)
		echo "== kernel tests (BPF programs loaded for real; root)"
		st=0
		meson test -C build --suite kernel --print-errorlogs || st=$?
		result kernel $st
		;;
	lint)
		echo "== lint (clang-format, cppcheck, clang-tidy)"
		st=0
		scripts/lint.sh build || st=$?
		result lint $st
		;;
	e2e)
		echo "== end-to-end tests (root, real uvicorn + FastAPI)"
		st=0
		/usr/bin/python3 -m pytest -v -p no:cacheprovider tests/e2e || st=$?
		result e2e $st
		;;
	browser)
		echo "== browser tests (dashboard in headless chromium, on a real trace of the demo)"
		st=0
		work=$(mktemp -d /tmp/tg-browser.XXXXXX)
		chmod 755 "$work" # timeglass serve drops root: the database must be readable
		port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
		PORT=$port DURATION=12 LOAD_SECONDS=8 DB="$work/demo.db" scripts/demo.sh >"$work/demo.log" 2>&1 ||
			{ st=$?; tail -30 "$work/demo.log"; }
		[ $st -ne 0 ] || TG_DB="$work/demo.db" TIMEGLASS="$PWD/build/timeglass" tests/browser/run.sh || st=$?
		rm -rf "$work"
		result browser $st
		;;
	*)
		echo "unknown suite $s" >&2
		exit 2
		;;
	esac
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
