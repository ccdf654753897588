#!/usr/bin/env bash
# make bench-scale: atoll's throughput for 1, 2, 3 and 4 members, each on a
# host of its own (a network namespace with a capped link), and issue 16's
# push and pull ratios of a 3-member cluster on such hosts. Needs root.
#
#   bash test/bench/scale/run.sh                        # defaults: 400 Mbit/s links, R=2, routing redirect
#   bash test/bench/scale/run.sh -routing proxy -mbit 200
#   bash test/bench/scale/run.sh -scenarios ratios -ratio-mbit 1000 -ratio-mib 256   # issue 16's ratios only
#
# Arguments are passed to the Go program (go run ./test/bench/scale -h lists them).
set -euo pipefail
cd "$(dirname "$0")/../../.."

echo "bench-scale: building bin/atoll" >&2
CGO_ENABLED=0 go build -o bin/atoll ./cmd/atoll
exec go run ./test/bench/scale -atoll-bin "$PWD/bin/atoll" "$@"
