#!/usr/bin/env bash
# Install the Debian packages TimeGlass needs to build, test, run its demo and
# benchmarks. Only what is missing is installed; `apt-get update` runs once
# when something is. Usage: scripts/deps.sh [build|all]  (default: all)
set -euo pipefail

BUILD_PKGS=(gcc make pkg-config clang llvm meson ninja-build bpftool libbpf-dev libelf-dev
	zlib1g-dev libsqlite3-dev libcjson-dev libhttp-parser-dev libcmocka-dev libclang-rt-14-dev
	libcivetweb-dev libpg-query-dev cppcheck clang-tidy clang-format)
RUN_PKGS=(python3 python3-fastapi python3-uvicorn python3-uvloop python3-httptools python3-h11
	python3-pytest python3-asyncpg python3-psycopg2 python3-psycopg python3-sqlalchemy
	postgresql-15 gunicorn wrk sqlite3 curl procps
	iproute2 chromium)

want=("${BUILD_PKGS[@]}")
if [ "${1:-all}" = all ]; then
	want+=("${RUN_PKGS[@]}")
fi

# Node.js and npm (browser tests) may come from another source than Debian on
# these machines (nodesource bundles npm); install Debian's only when absent.
if [ "${1:-all}" = all ] && ! command -v npm >/dev/null; then
	want+=(nodejs npm)
fi

missing=()
for p in "${want[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
SUDO=
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi
echo "scripts/deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
