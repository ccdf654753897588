# atoll: `make run` starts a registry on :5000 with data in ./data;
# `make test` runs every test.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE   ?= atoll:latest
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build run test vet race fuzz bench bench-cluster bench-scale bench-s3 image clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/atoll ./cmd/atoll

run: build
	./bin/atoll serve

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	@if command -v staticcheck >/dev/null; then staticcheck ./...; else echo "staticcheck not installed: skipped (.ci/run installs it)"; fi

# The end-to-end tests write their summaries (conformance results, Docker
# timings) to a file printed at the end: go test hides a passing test's output.
test: vet fuzz race
	@rm -f .e2e-summary
	ATOLL_E2E_SUMMARY=$(CURDIR)/.e2e-summary $(GO) test -count=1 -timeout 30m ./...; \
		status=$$?; echo "--- end-to-end summary"; cat .e2e-summary 2>/dev/null; rm -f .e2e-summary; exit $$status

# The race detector over every package's own tests (the end-to-end tests
# drive separate processes, which it cannot see into).
race:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v -e /test/e2e -e /test/bench)

# Each fuzz target runs briefly beyond its committed seeds (more with, say,
# FUZZTIME=2000000x FUZZTIME_CONFIG=100000x). A count of inputs, not a
# duration: a run bound by time can fail with "context deadline exceeded"
# at its end while a worker is busy, a race in Go's fuzz coordinator
# before Go 1.27 (golang/go#75804), and did in CI. FuzzParseConfig takes
# about 1,500 inputs a second here, the others 20,000 and more.
FUZZTIME ?= 50000x
FUZZTIME_CONFIG ?= 8000x
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParseManifest$$' -fuzztime=$(FUZZTIME) ./oci
	$(GO) test -run='^$$' -fuzz='^FuzzParseReference$$' -fuzztime=$(FUZZTIME) ./oci
	$(GO) test -run='^$$' -fuzz='^FuzzValidName$$' -fuzztime=$(FUZZTIME) ./oci
	$(GO) test -run='^$$' -fuzz='^FuzzNamesAgreeWithGrammar$$' -fuzztime=$(FUZZTIME) ./oci
	$(GO) test -run='^$$' -fuzz='^FuzzContentRange$$' -fuzztime=$(FUZZTIME) ./api
	$(GO) test -run='^$$' -fuzz='^FuzzParseRoute$$' -fuzztime=$(FUZZTIME) ./api
	$(GO) test -run='^$$' -fuzz='^FuzzParseConfig$$' -fuzztime=$(FUZZTIME_CONFIG) ./cmd/atoll

bench:
	bash test/bench/run.sh $(BENCH_FLAGS)

bench-s3:
	bash test/bench/s3/run.sh $(BENCH_FLAGS)

bench-cluster:
	bash test/bench/cluster/run.sh $(BENCH_FLAGS)

# Members on hosts of their own (network namespaces, capped links); root.
bench-scale:
	bash test/bench/scale/run.sh $(BENCH_FLAGS)

# The metadata store at scale (issue 12): 1M manifests by default; smaller
# with BENCH_FLAGS='-repos 10000 -manifests 100000 -tags 200000'.
.PHONY: bench-metadata
bench-metadata:
	$(GO) run ./test/bench/metadata $(BENCH_FLAGS)

# The container image: FROM scratch around the static binary; pulls nothing.
image:
	IMAGE=$(IMAGE) VERSION=$(VERSION) GO=$(GO) bash deploy/build-image.sh

clean:
	rm -rf bin
