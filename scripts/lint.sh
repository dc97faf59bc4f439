#!/usr/bin/env bash
# Static checks: clang-format (no diff), cppcheck and clang-tidy on the C sources.
# Needs a configured build dir (compile_commands.json). Usage: scripts/lint.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
status=0
files=$(ls user/*.c user/*.h cli/*.c cli/*.h include/timeglass/*.h bpf/*.c bpf/*.h tests/unit/*.c tests/unit/*.h tests/fuzz/*.c 2>/dev/null)

echo "-- clang-format"
if ! clang-format --dry-run --Werror $files; then
	echo "clang-format: run 'make format'"
	status=1
fi

echo "-- cppcheck"
if ! cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	--inline-suppr --std=c11 -D_GNU_SOURCE -Iinclude -Iuser -I"$BUILD" \
	--suppress=missingIncludeSystem user cli; then
	status=1
fi

echo "-- clang-tidy"
if ! clang-tidy -p "$BUILD" --quiet --warnings-as-errors='*' \
	--checks='-*,bugprone-*,-bugprone-easily-swappable-parameters,-bugprone-reserved-identifier,-bugprone-narrowing-conversions,-bugprone-assignment-in-if-condition,clang-analyzer-*,-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling,-clang-analyzer-security.insecureAPI.strcpy' \
	user/*.c cli/*.c 2>/dev/null; then
	status=1
fi
exit $status
