package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

const (
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
	manifestRepo      = "bench/manifest"
	manifestTag       = "bench"
)

// measurement is one round's result: MB/s (10^6 bytes) or requests/s, plus
// the p99 latency for wrk-driven scenarios.
type measurement struct {
	value float64
	p99   time.Duration
}

type scenario struct {
	key   string // flag name and progress label
	title string // report label
	unit  string
	// reference scenarios measure the machine, not a registry: run is
	// called with a nil registry, once per round.
	reference bool
	// versus is the reference scenario atoll is compared with (its ratio
	// column), if any; target and goal are for that ratio when set, else
	// for atoll/distribution. For reference only: nothing fails.
	versus string
	// versusShown keeps the target on atoll/distribution: the reference
	// is shown beside it, as the bound both registries share.
	versusShown bool
	target      string
	goal        float64
	// root says the scenario needs root (it drops the page cache); it is
	// left out of the default list otherwise.
	root bool
	// setup is optional and runs once per registry before the rounds.
	setup func(ctx context.Context, b *bench, r *registry) error
	run   func(ctx context.Context, b *bench, r *registry) (measurement, error)
}

const (
	refFsync = "fsync-write"
	refPull  = "pull-bound"
)

var allScenarios = []scenario{
	{key: refFsync, title: "fsync'd write (dd conv=fsync)", unit: "MB/s", reference: true, run: runFsyncWrite},
	{key: "sha256", title: "Go SHA-256", unit: "MB/s", reference: true, run: runSHA256},
	{key: "push", title: "push monolithic", unit: "MB/s", versus: refFsync, target: ">= 0.9x fsync'd write", goal: 0.9, run: runPushMonolithic},
	{key: "push-chunked", title: "push chunked", unit: "MB/s", versus: refFsync, target: ">= 0.9x fsync'd write", goal: 0.9, run: runPushChunked},
	{key: refPull, title: "pull from a bare sendfile server", unit: "MB/s", reference: true, run: runPullBound},
	{key: "pull", title: "pull", unit: "MB/s", versus: refPull, versusShown: true, target: ">= 1.1x distribution", goal: 1.1, setup: setupPull, run: runPull},
	{key: "pull-cold", title: "pull, page cache dropped", unit: "MB/s", target: ">= 1.1x distribution", goal: 1.1, root: true, setup: setupPull, run: runPullCold},
	{key: "manifest-get", title: "manifest GET", unit: "req/s", target: ">= 15x distribution", goal: 15, setup: setupManifest, run: runManifestGet},
}

func scenarioKeys() []string {
	keys := make([]string, len(allScenarios))
	for i, s := range allScenarios {
		keys[i] = s.key
	}
	return keys
}

// defaultScenarioKeys is every scenario this user can run.
func defaultScenarioKeys() []string {
	var keys []string
	for _, s := range allScenarios {
		if !s.root || os.Geteuid() == 0 {
			keys = append(keys, s.key)
		}
	}
	return keys
}

// selectScenarios returns the scenarios named in list, in canonical order.
func selectScenarios(list string) ([]scenario, error) {
	want := map[string]bool{}
	for _, k := range benchkit.SplitList(list) {
		want[k] = true
	}
	var out []scenario
	for _, s := range allScenarios {
		if want[s.key] {
			out = append(out, s)
			delete(want, s.key)
		}
	}
	if len(want) > 0 {
		unknown := slices.Sorted(maps.Keys(want))
		return nil, fmt.Errorf("unknown scenario(s) %s (known: %s)", strings.Join(unknown, ", "), strings.Join(scenarioKeys(), ", "))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scenario selected")
	}
	return out, nil
}

func needsWrk(scens []scenario) bool {
	for _, s := range scens {
		if s.key == "manifest-get" {
			return true
		}
	}
	return false
}

// bench holds what the scenarios share: the client and the blob file.
type bench struct {
	cfg  config
	hc   *http.Client
	blob *benchkit.BlobFile
	dir  string            // where the registries keep their data
	pull map[string]string // registry name -> digest of its pull blob
	bare *bareServer       // the pull's reference, once started
}

func newBench(cfg config) (*bench, error) {
	dir := cfg.workdir
	if dir == "" {
		dir = os.TempDir()
	}
	blob, err := benchkit.NewBlobFile(dir, cfg.sizeMiB)
	if err != nil {
		return nil, err
	}
	return &bench{cfg: cfg, hc: benchkit.NewHTTPClient(16, 16), blob: blob, dir: dir, pull: map[string]string{}}, nil
}

func (b *bench) close() {
	if b.bare != nil {
		b.bare.stop()
	}
	_ = b.blob.Close()
}

// runFsyncWrite copies the blob file to a new file where the registries
// keep their data and fsyncs it: the most a push can do.
func runFsyncWrite(_ context.Context, b *bench, _ *registry) (measurement, error) {
	v, err := benchkit.FsyncWrite(b.dir, b.blob)
	return measurement{value: v}, err
}

// runSHA256 hashes as many bytes as a blob holds, in memory: every push
// hashes its bytes once.
func runSHA256(_ context.Context, b *bench, _ *registry) (measurement, error) {
	return measurement{value: benchkit.SHA256Speed(b.blob.Size())}, nil
}

func runPushMonolithic(ctx context.Context, b *bench, r *registry) (measurement, error) {
	dgst, err := b.blob.Fresh()
	if err != nil {
		return measurement{}, err
	}
	start := time.Now()
	if err := benchkit.PushFile(ctx, b.hc, r.base, "bench/push", b.blob, dgst); err != nil {
		return measurement{}, err
	}
	return measurement{value: benchkit.MBps(b.blob.Size(), time.Since(start))}, nil
}

func runPushChunked(ctx context.Context, b *bench, r *registry) (measurement, error) {
	dgst, err := b.blob.Fresh()
	if err != nil {
		return measurement{}, err
	}
	start := time.Now()
	if err := pushChunked(ctx, b.hc, r.base, "bench/push-chunked", b.blob, dgst, int64(b.cfg.chunkMiB)<<20); err != nil {
		return measurement{}, err
	}
	return measurement{value: benchkit.MBps(b.blob.Size(), time.Since(start))}, nil
}

const repoPull = "bench/pull"

// setupPull pushes the blob every round pulls and checks, untimed, that
// it reads back whole.
func setupPull(ctx context.Context, b *bench, r *registry) error {
	dgst, err := b.blob.Fresh()
	if err != nil {
		return err
	}
	if err := benchkit.PushFile(ctx, b.hc, r.base, repoPull, b.blob, dgst); err != nil {
		return fmt.Errorf("pushing the blob to pull: %w", err)
	}
	got, err := benchkit.PullDigest(ctx, b.hc, r.base+"/v2/"+repoPull+"/blobs/"+dgst)
	if err != nil {
		return err
	}
	if got != dgst {
		return fmt.Errorf("GET blob %s: content mismatch (digest %s)", dgst, got)
	}
	b.pull[r.name] = dgst
	return nil
}

// runPull times a full GET of the pull blob, read as fast as it comes.
func runPull(ctx context.Context, b *bench, r *registry) (measurement, error) {
	start := time.Now()
	if err := benchkit.PullDiscard(ctx, b.hc, r.base+"/v2/"+repoPull+"/blobs/"+b.pull[r.name], b.blob.Size()); err != nil {
		return measurement{}, err
	}
	return measurement{value: benchkit.MBps(b.blob.Size(), time.Since(start))}, nil
}

// runPullCold times a full GET of the pull blob with nothing of it in
// the page cache, as after a restart, an eviction, or a push that did not
// go through the page cache (atoll's uploads do not): dropping the cache
// is untimed.
func runPullCold(ctx context.Context, b *bench, r *registry) (measurement, error) {
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0); err != nil {
		return measurement{}, fmt.Errorf("dropping the page cache (pull-cold needs root): %w", err)
	}
	return runPull(ctx, b, r)
}

// setupManifest pushes a config blob, one small layer and an OCI image
// manifest tagged "bench", then checks it reads back identically.
func setupManifest(ctx context.Context, b *bench, r *registry) error {
	layer, err := benchkit.RandomBytes(4096)
	if err != nil {
		return err
	}
	layerDigest := benchkit.Digest(layer)
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	if err != nil {
		return err
	}
	configDigest := benchkit.Digest(config)
	for _, blob := range []struct {
		data []byte
		dgst string
	}{{config, configDigest}, {layer, layerDigest}} {
		if err := benchkit.PushMonolithic(ctx, b.hc, r.base, manifestRepo, blob.data, blob.dgst); err != nil {
			return err
		}
	}
	type descriptor struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	manifest, err := json.Marshal(struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Config        descriptor   `json:"config"`
		Layers        []descriptor `json:"layers"`
	}{
		SchemaVersion: 2,
		MediaType:     mediaTypeManifest,
		Config:        descriptor{mediaTypeConfig, configDigest, len(config)},
		Layers:        []descriptor{{mediaTypeLayer, layerDigest, len(layer)}},
	})
	if err != nil {
		return err
	}
	if err := putManifest(ctx, b.hc, r.base, manifestRepo, manifestTag, mediaTypeManifest, manifest); err != nil {
		return err
	}
	return getManifest(ctx, b.hc, r.base, manifestRepo, manifestTag, mediaTypeManifest, manifest)
}

func runManifestGet(ctx context.Context, b *bench, r *registry) (measurement, error) {
	url := r.base + "/v2/" + manifestRepo + "/manifests/" + manifestTag
	res, err := runWrk(ctx, b.cfg, url, "Accept: "+mediaTypeManifest)
	if err != nil {
		return measurement{}, err
	}
	return measurement{value: res.rps, p99: res.p99}, nil
}
