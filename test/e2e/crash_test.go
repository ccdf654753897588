package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	crashCycles  = 4
	crashWriters = 4
	killMin      = 300 * time.Millisecond // kill no sooner than this after writers start
	killWindow   = 1200 * time.Millisecond
)

var (
	crashRepos = []string{"crash/alpha", "crash/beta"}
	crashTags  = []string{"v0", "v1", "v2", "v3"}
)

// TestCrashRestart pushes from concurrent writers, SIGKILLs the member at a
// random moment, restarts it on the same data directory and checks that
// everything the registry acknowledged survived, that nothing half-written
// is visible, and that interrupted uploads resume or restart cleanly. The
// data directory carries over from cycle to cycle, so later cycles also
// check data that survived earlier crashes. ATOLL_E2E_SEED replays a seed.
func TestCrashRestart(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("ATOLL_E2E_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("ATOLL_E2E_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (replay the kill schedule with ATOLL_E2E_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	n := startNode(t, filepath.Join(t.TempDir(), "data"))
	l := newLedger()
	for cycle := 1; cycle <= crashCycles; cycle++ {
		killAfter := killMin + time.Duration(rng.Int64N(int64(killWindow)))
		before := l.counts()
		runWritersThenKill(n, l, seed+uint64(cycle)*1000, killAfter)
		for _, e := range l.takeErrors() {
			t.Errorf("cycle %d, before the kill: %s", cycle, e)
		}
		after := l.counts()
		n.Restart()
		st := verify(t, n.URL(), l)
		t.Logf("cycle %d: SIGKILL after %v; acknowledged this cycle: %d blobs (%.1f MiB), %d manifests; "+
			"verified: %d blobs (%.1f MiB), %d manifests, %d tags, %d listed manifests complete, "+
			"%d unacknowledged blobs (%d visible), interrupted uploads: %v",
			cycle, killAfter.Round(time.Millisecond), after.blobs-before.blobs,
			float64(after.bytes-before.bytes)/(1<<20), after.manifests-before.manifests,
			st.blobs, float64(st.bytes)/(1<<20), st.manifests, st.tags, st.listed,
			st.unacked, st.unackedVisible, st.uploads)
		if after.blobs == before.blobs {
			t.Errorf("cycle %d: no blob was acknowledged before the kill", cycle)
		}
		if t.Failed() {
			return
		}
	}
}

// runWritersThenKill runs the writers until killAfter, SIGKILLs the member
// mid-flight, and returns once every writer has stopped.
func runWritersThenKill(n *Node, l *ledger, seed uint64, killAfter time.Duration) {
	c := newClient(n.URL())
	defer c.close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var killed atomic.Bool
	var wg sync.WaitGroup
	for i := range crashWriters {
		var key [32]byte
		binary.LittleEndian.PutUint64(key[:], seed+uint64(i))
		src := rand.NewChaCha8(key)
		w := &writer{c: c, l: l, src: src, rng: rand.New(src), killed: &killed}
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx) }()
	}
	allStopped := make(chan struct{})
	go func() { wg.Wait(); close(allStopped) }()
	timer := time.NewTimer(killAfter)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-allStopped: // every writer hit an error; it is in l.errs
	}
	killed.Store(true) // before the signal: any error seen from here on may be the kill's
	n.Kill()
	cancel()
	<-allStopped
}

// writer pushes images in a loop, recording in the ledger what it tried
// and what the registry acknowledged.
type writer struct {
	c      *client
	l      *ledger
	src    *rand.ChaCha8
	rng    *rand.Rand
	killed *atomic.Bool
}

func (w *writer) run(ctx context.Context) {
	for ctx.Err() == nil && !w.killed.Load() {
		if err := w.pushImage(ctx); err != nil {
			if !w.killed.Load() {
				w.l.fail(err)
			}
			return
		}
	}
}

// pushImage pushes one to three layers, a config and a manifest naming
// them, by tag (mostly) or by digest.
func (w *writer) pushImage(ctx context.Context) error {
	repo := crashRepos[w.rng.IntN(len(crashRepos))]
	layers := make([]v1.Descriptor, 1+w.rng.IntN(3))
	diffIDs := make([]digest.Digest, len(layers))
	for i := range layers {
		data := w.randomBytes(w.blobSize())
		if err := w.pushBlob(ctx, repo, data); err != nil {
			return err
		}
		layers[i] = v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: digest.FromBytes(data), Size: int64(len(data))}
		diffIDs[i] = layers[i].Digest
	}
	config, _ := json.Marshal(v1.Image{
		Platform: v1.Platform{Architecture: "amd64", OS: "linux"},
		Config:   v1.ImageConfig{Env: []string{fmt.Sprintf("NONCE=%x", w.randomBytes(16))}},
		RootFS:   v1.RootFS{Type: "layers", DiffIDs: diffIDs},
	})
	if err := w.pushBlob(ctx, repo, config); err != nil {
		return err
	}
	body, _ := json.Marshal(v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))},
		Layers:    layers,
	})
	d := digest.FromBytes(body)
	ref, tag := d.String(), ""
	if w.rng.IntN(5) > 0 {
		tag = crashTags[w.rng.IntN(len(crashTags))]
		ref = tag
	}
	put := w.l.tryManifest(repo, tag, d)
	r, err := w.c.do(ctx, "PUT", "/v2/"+repo+"/manifests/"+ref, http.Header{"Content-Type": {ociManifest}}, body, http.StatusCreated)
	if err != nil {
		return err
	}
	if got := r.header.Get("Docker-Content-Digest"); got != d.String() {
		return fmt.Errorf("PUT manifest %s in %s: Docker-Content-Digest %q, want %s", ref, repo, got, d)
	}
	w.l.ackManifest(repo, d, put)
	return nil
}

// blobSize is 1 KiB..2 MiB, spread evenly over the powers of two.
func (w *writer) blobSize() int {
	base := 1 << (10 + w.rng.IntN(11))
	return base + w.rng.IntN(base)
}

func (w *writer) randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = w.src.Read(b)
	return b
}

// pushBlob pushes data to repo by a randomly chosen method: monolithic
// POST ?digest=, or a session with zero or more PATCH chunks and a PUT that
// may carry the last chunk.
func (w *writer) pushBlob(ctx context.Context, repo string, data []byte) error {
	key := blobKey{repo, digest.FromBytes(data)}
	w.l.tryBlob(key, int64(len(data)))
	var err error
	if w.rng.IntN(3) == 0 {
		err = w.c.pushMonolithic(ctx, repo, data)
	} else {
		err = w.pushChunked(ctx, repo, data)
	}
	if err == nil {
		w.l.ackBlob(key, int64(len(data)))
	}
	return err
}

func (w *writer) pushChunked(ctx context.Context, repo string, data []byte) error {
	loc, err := w.c.startUpload(ctx, repo)
	if err != nil {
		return err
	}
	s := w.l.openSession(repo, loc, data)
	chunk := (64 << 10) << w.rng.IntN(4) // 64..512 KiB
	off := 0
	for len(data)-off > chunk {
		if loc, err = w.c.patchChunk(ctx, loc, data[off:off+chunk], int64(off)); err != nil {
			return err
		}
		off += chunk
		w.l.sessionAcked(s, loc, int64(off))
	}
	if w.rng.IntN(2) == 0 { // the last chunk by PATCH, then an empty PUT
		if loc, err = w.c.patchChunk(ctx, loc, data[off:], int64(off)); err != nil {
			return err
		}
		off = len(data)
		w.l.sessionAcked(s, loc, int64(off))
	}
	if err := w.c.finishUpload(ctx, loc, digest.FromBytes(data), data[off:], int64(off)); err != nil {
		return err
	}
	w.l.closeSession(s)
	return nil
}
