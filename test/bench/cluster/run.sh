#!/usr/bin/env bash
# make bench-cluster: atoll's cluster against atoll on its own, on this machine.
#
#   bash test/bench/cluster/run.sh                  # full run, 5 rounds (~3-4 min on 2 cores)
#   bash test/bench/cluster/run.sh -rounds 3
#   bash test/bench/cluster/run.sh -rounds 1 -size-mib 64 -duration 3s -scenarios pull
#
# Arguments are passed to the Go program (go run ./test/bench/cluster -h lists them).
set -euo pipefail
cd "$(dirname "$0")/../../.."

echo "bench-cluster: building bin/atoll" >&2
go build -o bin/atoll ./cmd/atoll
exec go run ./test/bench/cluster -atoll-bin "$PWD/bin/atoll" "$@"
