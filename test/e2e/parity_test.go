package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// registry:2 settings atoll honours: catalog.maxentries,
// notifications.endpoints[].mediatype and events.includereferences,
// storage.maintenance.readonly.enabled.

// hookRecorder is a webhook endpoint that keeps what it was sent.
type hookRecorder struct {
	mu     sync.Mutex
	types  []string
	events []hookEvent
}

type hookEvent struct {
	Action string `json:"action"`
	Target struct {
		Repository string `json:"repository"`
		Tag        string `json:"tag"`
		References []struct {
			Digest digest.Digest `json:"digest"`
		} `json:"references"`
	} `json:"target"`
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var env struct {
		Events []hookEvent `json:"events"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.types = append(h.types, r.Header.Get("Content-Type"))
	h.events = append(h.events, env.Events...)
	h.mu.Unlock()
}

// pushes returns the content types seen and the push events of manifests.
func (h *hookRecorder) pushes() (types []string, pushes []hookEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.events {
		if e.Action == "push" && e.Target.Tag != "" {
			pushes = append(pushes, e)
		}
	}
	return slices.Clone(h.types), pushes
}

func parityConfig(v1, v2 string) string {
	return fmt.Sprintf(`
catalog:
  maxentries: 2
notifications:
  events:
    includereferences: true
  endpoints:
    - name: old
      url: %s
      backoff: 100ms
    - name: new
      url: %s
      mediatype: v2
      backoff: 100ms
`, v1, v2)
}

// pushRepos pushes one image into each of repos, round-robin over cs; it
// returns the layer every image uses.
func pushRepos(t *testing.T, cs []*client, repos []string) []byte {
	ctx := context.Background()
	layer := []byte("parity layer")
	for i, repo := range repos {
		c := cs[i%len(cs)]
		cfg := []byte(fmt.Sprintf(`{"repo":%q}`, repo))
		if err := pushImageBlobs(ctx, c, repo, layer, cfg); err != nil {
			t.Fatal(err)
		}
		if _, err := c.do(ctx, "PUT", "/v2/"+repo+"/manifests/latest", manifestHeader, stressManifest(cfg, [][]byte{layer}), http.StatusCreated); err != nil {
			t.Fatal(err)
		}
	}
	return layer
}

// checkCatalogPages walks the catalog in pages of maxentries (2) on c.
func checkCatalogPages(ctx context.Context, c *client, want []string) error {
	var got []string
	path := "/v2/_catalog"
	for pages := 0; path != ""; pages++ {
		r, err := c.do(ctx, "GET", path, nil, nil, http.StatusOK)
		if err != nil {
			return err
		}
		var body struct{ Repositories []string }
		if err := json.Unmarshal(r.body, &body); err != nil {
			return err
		}
		if len(body.Repositories) > 2 {
			return fmt.Errorf("%s: a page of %d, over catalog.maxentries 2", path, len(body.Repositories))
		}
		got = append(got, body.Repositories...)
		path = ""
		if link := r.header.Get("Link"); link != "" {
			path = strings.TrimSuffix(strings.TrimPrefix(strings.Split(link, ";")[0], "<"), ">")
		}
		if pages > 10 {
			return fmt.Errorf("too many pages")
		}
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s: catalog %v, want %v", c.base, got, want)
	}
	if r, err := c.do(ctx, "GET", "/v2/_catalog?n=3", nil, nil, http.StatusBadRequest); err != nil || !strings.Contains(string(r.body), "PAGINATION_NUMBER_INVALID") {
		return fmt.Errorf("n over maxentries: %v", err)
	}
	return nil
}

// checkHooks waits until both endpoints have a push event of every repo,
// each in its envelope type and with the layer in its references.
func checkHooks(t *testing.T, old, neu *hookRecorder, repos []string, layer []byte) {
	pollUntil(t, 20*time.Second, "webhooks get every push", func() error {
		for _, h := range []struct {
			rec  *hookRecorder
			want string
		}{{old, "application/vnd.docker.distribution.events.v1+json"}, {neu, "application/vnd.docker.distribution.events.v2+json"}} {
			types, pushes := h.rec.pushes()
			for _, ct := range types {
				if ct != h.want {
					return fmt.Errorf("envelope sent as %q, want %q", ct, h.want)
				}
			}
			if len(pushes) < len(repos) {
				return fmt.Errorf("%d manifest pushes notified of %d", len(pushes), len(repos))
			}
			for _, e := range pushes {
				if !slices.ContainsFunc(e.Target.References, func(r struct {
					Digest digest.Digest `json:"digest"`
				}) bool {
					return r.Digest == digest.FromBytes(layer)
				}) {
					return fmt.Errorf("push of %s: references %v lack the layer", e.Target.Repository, e.Target.References)
				}
			}
		}
		return nil
	})
}

// checkReadOnly checks that c serves reads of repo and refuses writes.
func checkReadOnly(ctx context.Context, c *client, repo string) error {
	if _, _, err := c.getManifest(ctx, repo, "latest"); repo != "" && err != nil {
		return fmt.Errorf("read in read-only mode: %w", err)
	}
	if _, err := c.do(ctx, "GET", "/v2/_catalog", nil, nil, http.StatusOK); err != nil {
		return err
	}
	for _, w := range []struct{ method, path string }{
		{"POST", "/v2/ro/blobs/uploads/"},
		{"PUT", "/v2/ro/manifests/latest"},
		{"DELETE", "/v2/ro/manifests/latest"},
	} {
		r, err := c.do(ctx, w.method, w.path, manifestHeader, []byte("{}"), http.StatusServiceUnavailable)
		if err != nil {
			return err
		}
		if !strings.Contains(string(r.body), "read-only") {
			return fmt.Errorf("%s %s: %s does not say read-only", w.method, w.path, r.body)
		}
	}
	return nil
}

func TestParityOneNode(t *testing.T) {
	old, neu := &hookRecorder{}, &hookRecorder{}
	so, sn := httptest.NewServer(old), httptest.NewServer(neu)
	defer so.Close()
	defer sn.Close()
	dir := t.TempDir()
	n := startNodeWith(t, dir, nodeOptions{args: []string{"--config", ptWriteConfig(t, parityConfig(so.URL, sn.URL))}})
	c := newClient(n.URL())
	defer c.close()
	repos := []string{"p/a", "p/b", "p/c", "p/d", "p/e"}
	layer := pushRepos(t, []*client{c}, repos)
	if err := checkCatalogPages(context.Background(), c, repos); err != nil {
		t.Fatal(err)
	}
	checkHooks(t, old, neu, repos, layer)

	// The same data, read-only, set the registry:2 way.
	n.Stop()
	ro := startNodeWith(t, dir, nodeOptions{env: []string{"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED=true", "REGISTRY_CATALOG_MAXENTRIES=2"}})
	rc := newClient(ro.URL())
	defer rc.close()
	if err := checkReadOnly(context.Background(), rc, "p/a"); err != nil {
		t.Fatal(err)
	}
	if err := checkCatalogPages(context.Background(), rc, repos); err != nil {
		t.Fatal(err)
	}
}

func TestParityCluster(t *testing.T) {
	old, neu := &hookRecorder{}, &hookRecorder{}
	so, sn := httptest.NewServer(old), httptest.NewServer(neu)
	defer so.Close()
	defer sn.Close()
	cl := startLoopbackCluster(t, 3, clusterOptions{args: []string{"--config", ptWriteConfig(t, parityConfig(so.URL, sn.URL))}})
	var cs []*client
	for _, m := range cl.members {
		c := newClient(m.URL())
		defer c.close()
		cs = append(cs, c)
	}
	repos := []string{"p/a", "p/b", "p/c", "p/d", "p/e"}
	layer := pushRepos(t, cs, repos)
	pollUntil(t, 20*time.Second, "every member pages the whole catalog", func() error {
		for _, c := range cs {
			if err := checkCatalogPages(context.Background(), c, repos); err != nil {
				return err
			}
		}
		return nil
	})
	checkHooks(t, old, neu, repos, layer)

	rocl := startLoopbackCluster(t, 3, clusterOptions{env: []string{"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED=true"}})
	for _, m := range rocl.members {
		c := newClient(m.URL())
		defer c.close()
		if err := checkReadOnly(context.Background(), c, ""); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
}

// TestGarbageCollectDeleteUntagged is registry:2's offline
// `garbage-collect --delete-untagged` (atoll garbage-collect -m): a
// manifest no tag reaches goes, with the layer only it used; tagged and
// immutable ones stay.
func TestGarbageCollectDeleteUntagged(t *testing.T) {
	dir := t.TempDir()
	conf := ptWriteConfig(t, immutableConfig+"storage:\n  filesystem:\n    rootdirectory: "+dir+"\n")
	n := startNodeWith(t, dir, nodeOptions{args: []string{"--config", conf}})
	ctx := context.Background()
	c := newClient(n.URL())
	defer c.close()
	layers := [][]byte{[]byte("kept by v1.0.0"), []byte("only the untagged one"), []byte("kept by latest")}
	cfg := []byte(`{"gc":"untagged"}`)
	if err := pushImageBlobs(ctx, c, "gcm", append(layers, cfg)...); err != nil {
		t.Fatal(err)
	}
	var ms [][]byte
	for i, tag := range []string{"v1.0.0", "latest", "latest"} {
		m := stressManifest(cfg, [][]byte{layers[i]})
		ms = append(ms, m)
		if _, err := c.do(ctx, "PUT", "/v2/gcm/manifests/"+tag, manifestHeader, m, http.StatusCreated); err != nil {
			t.Fatal(err)
		}
	}
	n.Stop()
	out, err := exec.Command(atollBin, "garbage-collect", "-m", conf).CombinedOutput()
	if err != nil {
		t.Fatalf("atoll garbage-collect -m: %v\n%s", err, out)
	}
	t.Logf("garbage-collect -m: %s", strings.TrimSpace(string(out)))
	n = startNodeWith(t, dir, nodeOptions{args: []string{"--config", conf}})
	c2 := newClient(n.URL())
	defer c2.close()
	for i, m := range ms {
		want := http.StatusOK
		if i == 1 {
			want = http.StatusNotFound
		}
		if _, err := c2.do(ctx, "HEAD", "/v2/gcm/manifests/"+digest.FromBytes(m).String(), http.Header{"Accept": {ociManifest}}, nil, want); err != nil {
			t.Errorf("manifest %d: %v", i, err)
		}
		if _, err := c2.do(ctx, "HEAD", "/v2/gcm/blobs/"+digest.FromBytes(layers[i]).String(), nil, nil, want); err != nil {
			t.Errorf("layer %d: %v", i, err)
		}
	}
}
