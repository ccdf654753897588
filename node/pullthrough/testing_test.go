package pullthrough

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/storage/filesystem"
	"github.com/atollhq/atoll/storage/metadb"
)

// stores are a node's real stores in a temporary directory.
type stores struct {
	dir   string
	blobs *filesystem.Store
	meta  *metadb.Store
}

func newStores(t *testing.T) *stores {
	t.Helper()
	dir := t.TempDir()
	blobs, err := filesystem.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := metadb.Open(filepath.Join(dir, "metadata.db"), metadb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = meta.Close() })
	return &stores{dir: dir, blobs: blobs, meta: meta}
}

// upstream is a real atoll registry served twice: direct, for the test to
// push to, and served, for the cache, which counts requests and can be made
// to fail or to sit behind an auth wrapper.
type upstream struct {
	direct *httptest.Server
	served *httptest.Server
	fail   atomic.Bool // answer 503 to everything served
	mu     sync.Mutex
	counts map[string]int // "GET manifests", "HEAD blobs", ...
	gate   chan struct{}  // when set, a served blob GET waits for it to close
	gated  chan struct{}  // receives a value when a blob GET reaches the gate
}

func newUpstream(t *testing.T, wrap func(http.Handler) http.Handler) *upstream {
	t.Helper()
	s := newStores(t)
	reg := api.New(api.Config{}, api.Deps{Blobs: s.blobs, Meta: s.meta})
	u := &upstream{counts: map[string]int{}}
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.counts[r.Method+" "+kind(r.URL.Path)]++
		gate := u.gate
		u.mu.Unlock()
		if u.fail.Load() {
			http.Error(w, "upstream is failing", http.StatusServiceUnavailable)
			return
		}
		if gate != nil && r.Method == http.MethodGet && kind(r.URL.Path) == "blobs" {
			u.gated <- struct{}{}
			<-gate
		}
		reg.ServeHTTP(w, r)
	})
	if wrap != nil {
		h = wrap(h)
	}
	u.direct = httptest.NewServer(reg)
	u.served = httptest.NewServer(h)
	t.Cleanup(u.direct.Close)
	t.Cleanup(u.served.Close)
	return u
}

func kind(path string) string {
	for _, k := range []string{"manifests", "blobs"} {
		if strings.Contains(path, "/"+k+"/") {
			return k
		}
	}
	return "other"
}

// count returns how many "METHOD kind" requests were served.
func (u *upstream) count(key string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.counts[key]
}

// push writes a random image to repo:tag directly and returns it.
func (u *upstream) push(t *testing.T, repo, tag string) v1.Image {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	u.pushImage(t, repo, tag, img)
	return img
}

// pushImage writes img to repo:tag directly.
func (u *upstream) pushImage(t *testing.T, repo, tag string, img v1.Image) {
	t.Helper()
	ref := refOf(t, strings.TrimPrefix(u.direct.URL, "http://"), repo, tag)
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

func refOf(t *testing.T, host, repo, tag string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// testCache is a Cache over its own stores, with a settable clock, served
// by a real atoll API.
type testCache struct {
	*Cache
	stores *stores
	srv    *httptest.Server
	clock  *clock
}

func newTestCache(t *testing.T, cfg Config) *testCache {
	t.Helper()
	s := newStores(t)
	c, err := New(cfg, Deps{Blobs: s.blobs, Meta: s.meta})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	c.manifests.checked.now = clk.now
	srv := httptest.NewServer(api.New(api.Config{}, api.Deps{Blobs: s.blobs, Meta: s.meta, Upstream: c}))
	t.Cleanup(srv.Close)
	return &testCache{Cache: c, stores: s, srv: srv, clock: clk}
}

// hubConfig caches repositories under "hub/" from u.
func hubConfig(u *upstream) Config {
	return Config{Upstreams: []Upstream{{Prefix: "hub", RemoteURL: u.served.URL}}}
}

// pull fetches repo:tag through the cache's API, validates every blob and
// returns the image's digest.
func (tc *testCache) pull(t *testing.T, repo, tag string) v1.Hash {
	t.Helper()
	ref := refOf(t, strings.TrimPrefix(tc.srv.URL, "http://"), repo, tag)
	img, err := remote.Image(ref, remote.WithRetryPredicate(func(error) bool { return false }), remote.WithRetryStatusCodes())
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("pull %s: invalid: %v", ref, err)
	}
	return digestOf(t, img)
}

func digestOf(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
