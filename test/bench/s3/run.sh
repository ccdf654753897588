#!/usr/bin/env bash
# make bench-s3: atoll on S3 storage (MinIO) against minio-go on the same MinIO.
#
#   bash test/bench/s3/run.sh                  # full run, 5 rounds (~2-3 min on 2 cores)
#   bash test/bench/s3/run.sh -rounds 3
#   bash test/bench/s3/run.sh -rounds 1 -size-mib 64 -scenarios push,pull
#
# Arguments are passed to the Go program (go run ./test/bench/s3 -h lists them).
set -euo pipefail
cd "$(dirname "$0")/../../.."

# The same MinIO as CI and test/minio (minio.Install).
install="github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"
minio_bin="$(command -v minio || true)"
if [ -z "$minio_bin" ]; then
	minio_bin="$(go env GOPATH | cut -d: -f1)/bin/minio"
fi
if [ ! -x "$minio_bin" ]; then
	echo "bench-s3: minio not found; installing it: go install $install" >&2
	go install "$install"
fi

echo "bench-s3: building bin/atoll" >&2
go build -o bin/atoll ./cmd/atoll
exec go run ./test/bench/s3 -atoll-bin "$PWD/bin/atoll" -minio-bin "$minio_bin" "$@"
