#!/usr/bin/env bash
# make bench: compare atoll with CNCF Distribution (Debian docker-registry).
#
#   bash test/bench/run.sh                          # full run, 5 rounds
#   bash test/bench/run.sh -rounds 1 -duration 3s   # quick run
#   bash test/bench/run.sh -only=distribution       # harness check, no atoll build
#
# Arguments are passed to the Go program (go run ./test/bench -h lists them).
set -euo pipefail
cd "$(dirname "$0")/../.."

# Distribution-only runs do not need atoll built.
only=""
prev=""
for arg in "$@"; do
	case "$arg" in
	-only=* | --only=*) only="${arg#*=}" ;;
	esac
	if [ "$prev" = "-only" ] || [ "$prev" = "--only" ]; then only="$arg"; fi
	prev="$arg"
done

missing=()
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "bench: installing ${missing[*]}" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq "${missing[@]}" >/dev/null
	else
		why="not running as root"
		command -v apt-get >/dev/null 2>&1 || why="apt-get is not available"
		echo "bench: missing ${missing[*]} and cannot install it ($why)." >&2
		echo "bench: install it first, e.g.: sudo apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
fi

args=(-distribution-bin "$(command -v docker-registry)" -wrk-bin "$(command -v wrk)")
if [ "$only" != "distribution" ]; then
	echo "bench: building bin/atoll" >&2
	go build -o bin/atoll ./cmd/atoll
	args+=(-atoll-bin "$PWD/bin/atoll")
fi

exec go run ./test/bench "${args[@]}" "$@"
