package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
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
	key    string // flag name and progress label
	title  string // report label
	unit   string
	target string  // spec target for atoll/distribution, for reference only
	goal   float64 // ratio the target asks for
	// setup is optional and runs once per registry before the rounds.
	setup func(ctx context.Context, b *bench, r *registry) error
	run   func(ctx context.Context, b *bench, r *registry) (measurement, error)
}

var allScenarios = []scenario{
	{key: "push", title: "push monolithic", unit: "MB/s", target: ">= 3x", goal: 3, run: runPushMonolithic},
	{key: "push-chunked", title: "push chunked", unit: "MB/s", target: ">= 3x", goal: 3, run: runPushChunked},
	{key: "pull", title: "pull", unit: "MB/s", target: ">= 1x", goal: 1, run: runPull},
	{key: "manifest-get", title: "manifest GET", unit: "req/s", target: ">= 15x", goal: 15, setup: setupManifest, run: runManifestGet},
}

func scenarioKeys() []string {
	keys := make([]string, len(allScenarios))
	for i, s := range allScenarios {
		keys[i] = s.key
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

// bench holds what the scenarios share: the client and the blob buffers.
type bench struct {
	cfg config
	hc  *http.Client
	*benchkit.Payload
}

func newBench(cfg config) (*bench, error) {
	p, err := benchkit.NewPayload(cfg.sizeMiB)
	if err != nil {
		return nil, err
	}
	return &bench{cfg: cfg, hc: benchkit.NewHTTPClient(16, 16), Payload: p}, nil
}

func runPushMonolithic(ctx context.Context, b *bench, r *registry) (measurement, error) {
	data, dgst := b.Fresh()
	start := time.Now()
	if err := benchkit.PushMonolithic(ctx, b.hc, r.base, "bench/push", data, dgst); err != nil {
		return measurement{}, err
	}
	return measurement{value: benchkit.MBps(int64(len(data)), time.Since(start))}, nil
}

func runPushChunked(ctx context.Context, b *bench, r *registry) (measurement, error) {
	data, dgst := b.Fresh()
	start := time.Now()
	if err := pushChunked(ctx, b.hc, r.base, "bench/push-chunked", data, dgst, b.cfg.chunkMiB<<20); err != nil {
		return measurement{}, err
	}
	return measurement{value: benchkit.MBps(int64(len(data)), time.Since(start))}, nil
}

// runPull pushes a fresh blob (untimed), then times a full GET of it and
// verifies the bytes afterwards.
func runPull(ctx context.Context, b *bench, r *registry) (measurement, error) {
	const repo = "bench/pull"
	data, dgst := b.Fresh()
	if err := benchkit.PushMonolithic(ctx, b.hc, r.base, repo, data, dgst); err != nil {
		return measurement{}, fmt.Errorf("pushing the blob to pull: %w", err)
	}
	clear(b.Recv)
	start := time.Now()
	if _, err := benchkit.Pull(ctx, b.hc, r.base, repo, dgst, b.Recv); err != nil {
		return measurement{}, err
	}
	elapsed := time.Since(start)
	if !bytes.Equal(b.Recv, data) {
		return measurement{}, fmt.Errorf("GET blob %s: content mismatch (digest %s)", dgst, benchkit.Digest(b.Recv))
	}
	return measurement{value: benchkit.MBps(int64(len(data)), elapsed)}, nil
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
