package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// A pull-through cache that respects its upstream: a fake Docker Hub counts
// every request and, once told, answers 429 TOOMANYREQUESTS as Docker Hub
// does when its pull limit is spent.

// fakeHub serves images from memory with Docker Hub's rate-limit headers.
type fakeHub struct {
	mu        sync.Mutex
	manifests map[string]hubManifest // "repo:tag" and "repo@digest"
	blobs     map[string][]byte      // by digest
	requests  map[string]int         // "METHOD path" -> count
	limited   bool                   // answer 429 to manifest requests
	remaining int                    // manifest GETs left in the window
}

type hubManifest struct {
	body      []byte
	mediaType string
	digest    string
}

func newFakeHub(t *testing.T) (*fakeHub, string) {
	h := &fakeHub{manifests: map[string]hubManifest{}, blobs: map[string][]byte{}, requests: map[string]int{}, remaining: 100}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, strings.TrimPrefix(srv.URL, "http://")
}

// put stores img as repo:tag.
func (h *fakeHub) put(t *testing.T, repo, tag string, img v1.Image) {
	t.Helper()
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := img.MediaType()
	d, _ := img.Digest()
	cfgName, _ := img.ConfigName()
	cfg, _ := img.RawConfigFile()
	h.mu.Lock()
	defer h.mu.Unlock()
	m := hubManifest{body: raw, mediaType: string(mt), digest: d.String()}
	h.manifests[repo+":"+tag], h.manifests[repo+"@"+d.String()] = m, m
	h.blobs[cfgName.String()] = cfg
	layers, _ := img.Layers()
	for _, l := range layers {
		ld, _ := l.Digest()
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		h.blobs[ld.String()] = b
	}
}

func (h *fakeHub) count(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.requests[key]
}

func (h *fakeHub) total() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.requests {
		n += c
	}
	return n
}

func (h *fakeHub) limit() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.limited = true
}

func (h *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.requests[r.Method+" "+r.URL.Path]++
	h.mu.Unlock()
	if r.URL.Path == "/v2/" {
		return
	}
	if i := strings.Index(r.URL.Path, "/blobs/"); i > 0 {
		h.mu.Lock()
		b, ok := h.blobs[r.URL.Path[i+len("/blobs/"):]]
		h.mu.Unlock()
		if !ok {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		// An upstream's latency: concurrent pulls overlap the fetch.
		time.Sleep(150 * time.Millisecond)
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		_, _ = w.Write(b)
		return
	}
	i := strings.Index(r.URL.Path, "/manifests/")
	if i < 0 {
		http.NotFound(w, r)
		return
	}
	repo, ref := strings.TrimPrefix(r.URL.Path[:i], "/v2/"), r.URL.Path[i+len("/manifests/"):]
	key := repo + ":" + ref
	if strings.Contains(ref, ":") {
		key = repo + "@" + ref
	}
	h.mu.Lock()
	m, ok := h.manifests[key]
	limited := h.limited || h.remaining <= 0
	if !limited && r.Method == http.MethodGet {
		h.remaining--
	}
	remaining := h.remaining
	h.mu.Unlock()
	w.Header().Set("RateLimit-Limit", "100;w=21600")
	if limited {
		w.Header().Set("RateLimit-Remaining", "0;w=21600")
		w.Header().Set("Retry-After", "3600")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}`)
		return
	}
	w.Header().Set("RateLimit-Remaining", fmt.Sprintf("%d;w=21600", remaining))
	if !ok {
		http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", m.mediaType)
	w.Header().Set("Docker-Content-Digest", m.digest)
	w.Header().Set("Content-Length", fmt.Sprint(len(m.body)))
	if r.Method == http.MethodGet {
		_, _ = w.Write(m.body)
	}
}

// TestPullThroughUpstreamLimits: 16 concurrent pulls through 3 members
// fetch each blob from the upstream exactly once; once the upstream answers
// 429, cached images are still served and an uncached one is refused with
// 429 TOOMANYREQUESTS without hammering the upstream; atoll works as
// dockerd's registry-mirrors target (library/ names, no prefix).
func TestPullThroughUpstreamLimits(t *testing.T) {
	hub, hubAddr := newFakeHub(t)
	img := ptImage(t, 3, 256<<10)
	hub.put(t, "library/alpine", "latest", img)
	hub.put(t, "library/busybox", "latest", ptImage(t, 1, 4<<10))
	conf := ptWriteConfig(t, fmt.Sprintf("proxy:\n  remoteurl: http://%s\n  tagttl: 1ms\n  library: true\n", hubAddr))
	c := startLoopbackCluster(t, 3, clusterOptions{args: []string{"--config", conf}})

	const pulls = 16
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, pulls)
	for i := range pulls {
		m := c.members[i%3]
		wg.Go(func() { errs <- ptPull(context.Background(), m.Addr(), "library/alpine:latest", img) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	cfgName, _ := img.ConfigName()
	blobs := []string{cfgName.String()}
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		blobs = append(blobs, d.String())
	}
	for _, d := range blobs {
		gets, heads := hub.count("GET /v2/library/alpine/blobs/"+d), hub.count("HEAD /v2/library/alpine/blobs/"+d)
		if gets != 1 || heads != 0 {
			t.Errorf("blob %s: %d GETs and %d HEADs upstream for %d pulls through 3 members, want 1 GET", d, gets, heads, pulls)
		}
	}
	d, _ := img.Digest()
	manifestGets := hub.count("GET /v2/library/alpine/manifests/latest") + hub.count("GET /v2/library/alpine/manifests/"+d.String())
	if manifestGets != 1 {
		t.Errorf("%d manifest GETs upstream (the rate-limited kind), want 1", manifestGets)
	}
	logMeasure(t, "%d concurrent pulls through 3 members in %v: upstream saw %d requests (1 GET per blob, %d blobs; manifest GETs %d, tag HEADs %d)",
		pulls, took.Round(time.Millisecond), hub.total(), len(blobs), manifestGets, hub.count("HEAD /v2/library/alpine/manifests/latest"))

	// registry-mirrors: dockerd asks for library/alpine; a single name is
	// library/ upstream too.
	before := hub.count("HEAD /v2/library/alpine/manifests/latest")
	if err := ptPull(context.Background(), c.members[0].Addr(), "alpine:latest", img); err != nil {
		t.Fatal(err)
	}
	if hub.count("HEAD /v2/library/alpine/manifests/latest") == before || hub.count("HEAD /v2/alpine/manifests/latest") != 0 {
		t.Error("a single-name pull did not go to library/ upstream")
	}

	// The upstream's limit is spent.
	hub.limit()
	before = hub.total()
	for _, m := range c.members {
		if err := ptPull(context.Background(), m.Addr(), "library/alpine:latest", img); err != nil {
			t.Errorf("cached image while the upstream answers 429, via %s: %v", m.name, err)
		}
		for range 3 {
			req, _ := http.NewRequest("GET", m.URL()+"/v2/library/busybox/manifests/latest", nil)
			req.Header.Set("Accept", ptManifestTypes)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "TOOMANYREQUESTS") ||
				!strings.Contains(string(body), "rate-limiting") || resp.Header.Get("Retry-After") == "" {
				t.Errorf("uncached image while the upstream answers 429, via %s: %d %s (Retry-After %q), want 429 TOOMANYREQUESTS",
					m.name, resp.StatusCode, body, resp.Header.Get("Retry-After"))
			}
		}
	}
	asked := hub.total() - before
	if asked > 3 {
		t.Errorf("the upstream got %d requests for 3 cached and 9 uncached pulls once it said 429; want at most one per member", asked)
	}
	logMeasure(t, "upstream answering 429: 3 cached pulls served, 9 uncached refused with 429, %d requests reached the upstream", asked)
}
