#!/usr/bin/env bash
# Builds atoll's container image (default tag atoll:latest) FROM scratch:
# a static binary, the default config and an empty data directory owned by
# the image's user (65532). Needs only Go and a Docker engine; pulls nothing.
#
#   deploy/build-image.sh                 # atoll:latest
#   IMAGE=atoll:1.0 VERSION=1.0 deploy/build-image.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
image=${IMAGE:-atoll:latest}
version=${VERSION:-$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)}
go=${GO:-go}

ctx=$(mktemp -d "${TMPDIR:-/tmp}/atoll-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT

echo "building atoll $version (static)"
(cd "$root" && CGO_ENABLED=0 "$go" build -trimpath -ldflags "-s -w -X main.version=$version" -o "$ctx/atoll" ./cmd/atoll)
cp "$root/deploy/config.yml" "$ctx/config.yml"
# registry:2's command line: /bin/registry and /bin/htpasswd are links to
# the binary, which answers by the name it runs as (COPY keeps symlinks
# inside a copied directory).
mkdir -p "$ctx/bin"
ln -s /usr/local/bin/atoll "$ctx/bin/registry"
ln -s /usr/local/bin/atoll "$ctx/bin/htpasswd"
mkdir -p "$ctx/var/lib/registry"
chmod 0755 "$ctx/atoll" "$ctx/var/lib/registry"
chmod 0644 "$ctx/config.yml"

echo "building image $image"
# BuildKit needs the buildx plugin; without it the classic builder does the
# same job (the Dockerfile uses nothing BuildKit-specific).
if [ -z "${DOCKER_BUILDKIT:-}" ] && ! docker buildx version >/dev/null 2>&1; then
	export DOCKER_BUILDKIT=0
fi
docker build --pull=false \
	--label "org.opencontainers.image.version=$version" \
	--label "org.opencontainers.image.title=atoll" \
	-f "$root/deploy/Dockerfile" -t "$image" "$ctx"

# The image this replaced, now untagged, goes (only images of this script).
docker image prune --force --filter "label=org.opencontainers.image.title=atoll" >/dev/null || true
docker image ls "$image"
