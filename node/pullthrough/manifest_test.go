package pullthrough

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/oci"
	"github.com/atollhq/atoll/storage"
)

func TestTagCachedWithinTTL(t *testing.T) {
	up := newUpstream(t, nil)
	img := up.push(t, "library/alpine", "latest")
	tc := newTestCache(t, hubConfig(up))

	if got, want := tc.pull(t, "hub/library/alpine", "latest"), digestOf(t, img); got != want {
		t.Fatalf("pulled %s, pushed %s", got, want)
	}
	heads, manifests, blobs := up.count("HEAD manifests"), up.count("GET manifests"), up.count("GET blobs")
	if heads != 1 || manifests != 1 || blobs != 3 {
		t.Errorf("first pull: upstream served %d manifest HEADs, %d GETs and %d blob GETs, want 1, 1 and 3 (config + 2 layers)", heads, manifests, blobs)
	}
	tc.clock.advance(DefaultTTL - time.Second)
	tc.pull(t, "hub/library/alpine", "latest")
	if n := up.count("HEAD manifests") + up.count("GET manifests") + up.count("GET blobs"); n != heads+manifests+blobs {
		t.Errorf("second pull within the TTL reached the upstream: %d requests in all, want %d", n, heads+manifests+blobs)
	}
	if !tc.Proxied("hub/library/alpine") || tc.Proxied("local/app") {
		t.Error("Proxied: want hub/... proxied and local/... not")
	}
}

func TestTagRefreshedAfterTTL(t *testing.T) {
	up := newUpstream(t, nil)
	img := up.push(t, "app", "v1")
	tc := newTestCache(t, hubConfig(up))
	first := tc.pull(t, "hub/app", "v1")

	second := digestOf(t, up.push(t, "app", "v1")) // the tag moves upstream
	if got := tc.pull(t, "hub/app", "v1"); got != first {
		t.Fatalf("within the TTL: pulled %s, want the cached %s", got, first)
	}
	tc.clock.advance(DefaultTTL)
	if got := tc.pull(t, "hub/app", "v1"); got != second {
		t.Fatalf("after the TTL: pulled %s, want the upstream's new %s", got, second)
	}
	if heads, gets := up.count("HEAD manifests"), up.count("GET manifests"); heads != 2 || gets != 2 {
		t.Errorf("two tag checks with a change: upstream served %d manifest HEADs and %d GETs, want 2 and 2", heads, gets)
	}

	// An unchanged tag costs one HEAD and no GET.
	tc.clock.advance(DefaultTTL)
	tc.pull(t, "hub/app", "v1")
	if heads, gets := up.count("HEAD manifests"), up.count("GET manifests"); heads != 3 || gets != 2 {
		t.Errorf("unchanged tag: upstream served %d manifest HEADs and %d GETs in all, want 3 and 2", heads, gets)
	}

	// A tag moved back to a manifest cached here costs one HEAD too.
	up.pushImage(t, "app", "v1", img)
	tc.clock.advance(DefaultTTL)
	if got := tc.pull(t, "hub/app", "v1"); got != first {
		t.Fatalf("tag moved back: pulled %s, want %s", got, first)
	}
	if heads, gets := up.count("HEAD manifests"), up.count("GET manifests"); heads != 4 || gets != 2 {
		t.Errorf("tag moved back: upstream served %d manifest HEADs and %d GETs in all, want 4 and 2", heads, gets)
	}
}

// An upstream that answers a manifest HEAD without Docker-Content-Digest
// gets a GET by tag.
func TestHeadWithoutDigest(t *testing.T) {
	up := newUpstream(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead && kind(r.URL.Path) == "manifests" {
				w.WriteHeader(http.StatusOK)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	img := up.push(t, "app", "v1")
	tc := newTestCache(t, hubConfig(up))
	if got := tc.pull(t, "hub/app", "v1"); got != digestOf(t, img) {
		t.Fatalf("pulled %s, pushed %s", got, digestOf(t, img))
	}
}

func TestUpstreamDownServesCache(t *testing.T) {
	for _, how := range []string{"failing", "closed"} {
		t.Run(how, func(t *testing.T) {
			up := newUpstream(t, nil)
			img := up.push(t, "app", "v1")
			tc := newTestCache(t, hubConfig(up))
			tc.pull(t, "hub/app", "v1")

			if how == "failing" {
				up.fail.Store(true)
			} else {
				up.served.Close()
			}
			tc.clock.advance(DefaultTTL)
			start := time.Now()
			if got := tc.pull(t, "hub/app", "v1"); got != digestOf(t, img) {
				t.Fatalf("upstream %s: pulled %s, want the cached %s", how, got, digestOf(t, img))
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("upstream %s: the pull took %v", how, took)
			}
			ctx := context.Background()
			_, err := tc.Manifest(ctx, "hub/app", oci.Reference{Tag: "never-pulled"})
			if !errors.Is(err, storage.ErrUnavailable) {
				t.Errorf("upstream %s, uncached tag: %v, want ErrUnavailable", how, err)
			}
			err = tc.Blob(ctx, "hub/app", digest.FromString("never pulled"))
			if !errors.Is(err, storage.ErrUnavailable) {
				t.Errorf("upstream %s, uncached blob: %v, want ErrUnavailable", how, err)
			}
		})
	}
}

func TestUnknown(t *testing.T) {
	up := newUpstream(t, nil)
	up.push(t, "app", "v1")
	tc := newTestCache(t, hubConfig(up))
	ctx := context.Background()

	if _, err := tc.Manifest(ctx, "hub/app", oci.Reference{Tag: "v2"}); !errors.Is(err, storage.ErrTagUnknown) {
		t.Errorf("unknown tag: %v, want ErrTagUnknown", err)
	}
	if _, err := tc.Manifest(ctx, "hub/nothing", oci.Reference{Tag: "v1"}); !errors.Is(err, storage.ErrTagUnknown) {
		t.Errorf("unknown repository: %v, want ErrTagUnknown", err)
	}
	d := digest.FromString("nothing")
	if _, err := tc.Manifest(ctx, "hub/app", oci.Reference{Digest: d}); !errors.Is(err, storage.ErrManifestUnknown) {
		t.Errorf("unknown digest: %v, want ErrManifestUnknown", err)
	}
	if err := tc.Blob(ctx, "hub/app", d); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Errorf("unknown blob: %v, want ErrBlobUnknown", err)
	}
	resp, err := http.Get(tc.srv.URL + "/v2/hub/app/manifests/v2")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("API: unknown tag answered %d, want 404", resp.StatusCode)
	}
}

func TestManifestByDigestServedLocally(t *testing.T) {
	up := newUpstream(t, nil)
	img := up.push(t, "app", "v1")
	tc := newTestCache(t, hubConfig(up))
	d := digest.Digest(digestOf(t, img).String())
	ctx := context.Background()
	for i := range 2 {
		m, err := tc.Manifest(ctx, "hub/app", oci.Reference{Digest: d})
		if err != nil || m.Descriptor.Digest != d {
			t.Fatalf("manifest by digest, try %d: %v, %v", i, m, err)
		}
	}
	if n := up.count("GET manifests"); n != 1 {
		t.Errorf("upstream served %d manifest GETs, want 1", n)
	}
	up.served.Close()
	tc.clock.advance(100 * DefaultTTL)
	if _, err := tc.Manifest(ctx, "hub/app", oci.Reference{Digest: d}); err != nil {
		t.Errorf("by digest with the upstream closed: %v", err)
	}
}

// lying serves manifests whose Docker-Content-Digest is not theirs and blobs
// whose bytes are not their digest's.
func lying(t *testing.T) *httptest.Server {
	t.Helper()
	manifest := `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeImageManifest + `","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + digest.FromString("{}").String() + `","size":2},"layers":[]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "/manifests/"):
			w.Header().Set("Content-Type", oci.MediaTypeImageManifest)
			w.Header().Set("Docker-Content-Digest", digest.FromString("other").String())
			_, _ = w.Write([]byte(manifest))
		case strings.Contains(r.URL.Path, "/blobs/"):
			_, _ = w.Write([]byte("these are not the bytes you are looking for"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestLyingUpstreamManifest(t *testing.T) {
	srv := lying(t)
	tc := newTestCache(t, Config{Proxy: Upstream{RemoteURL: srv.URL}})
	ctx := context.Background()
	if _, err := tc.Manifest(ctx, "app", oci.Reference{Tag: "v1"}); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("tag whose digest header lies: %v, want ErrUnavailable", err)
	}
	if _, err := tc.stores.meta.Tag("app", "v1"); !errors.Is(err, storage.ErrTagUnknown) {
		t.Errorf("the lie was stored: tag lookup gave %v", err)
	}
	d := digest.FromString("wanted")
	if _, err := tc.Manifest(ctx, "app", oci.Reference{Digest: d}); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("manifest by digest with other content: %v, want ErrUnavailable", err)
	}
	if repos := tc.stores.meta.Repositories("", 0); len(repos) != 0 {
		t.Errorf("repositories after lies: %v, want none", repos)
	}
}

func TestUpstreamHangingFallsBack(t *testing.T) {
	defer func(d time.Duration) { headerTimeout = d }(headerTimeout)
	headerTimeout = 200 * time.Millisecond
	var hang atomic.Bool
	release := make(chan struct{})
	up := newUpstream(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if hang.Load() {
				select {
				case <-r.Context().Done():
				case <-release:
				}
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	defer close(release) // before the server's Close, which waits for handlers
	img := up.push(t, "app", "v1")
	tc := newTestCache(t, hubConfig(up))
	tc.pull(t, "hub/app", "v1")

	hang.Store(true)
	tc.clock.advance(DefaultTTL)
	start := time.Now()
	if got := tc.pull(t, "hub/app", "v1"); got != digestOf(t, img) {
		t.Fatalf("upstream hanging: pulled %s, want the cached %s", got, digestOf(t, img))
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("upstream hanging: the pull took %v with a %v header timeout", took, headerTimeout)
	}
}

func TestTagRemovedUpstream(t *testing.T) {
	up := newUpstream(t, nil)
	up.push(t, "app", "v1")
	tc := newTestCache(t, hubConfig(up))
	tc.pull(t, "hub/app", "v1")

	req, err := http.NewRequest(http.MethodDelete, up.direct.URL+"/v2/app/manifests/v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete the tag upstream: %d", resp.StatusCode)
	}
	tc.clock.advance(DefaultTTL)
	if _, err := tc.Manifest(context.Background(), "hub/app", oci.Reference{Tag: "v1"}); !errors.Is(err, storage.ErrTagUnknown) {
		t.Errorf("tag removed upstream, cached here: %v, want ErrTagUnknown", err)
	}
}
