package node

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/node/gc"
	"github.com/atollhq/atoll/node/notify"
)

// standalone starts a member on its own behind an httptest server.
func standalone(t *testing.T, cfg Config) (*Node, *httptest.Server) {
	t.Helper()
	cfg.DataDir = t.TempDir()
	cfg.Cluster.NodeName = "solo"
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	n.startBackground(ctx, &wg)
	t.Cleanup(func() { srv.Close(); cancel(); wg.Wait(); _ = n.Close() })
	return n, srv
}

func request(t *testing.T, method, url string, body []byte, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}

// push stores an image of one layer in repo:tag and returns the layer and
// manifest digests.
func push(t *testing.T, base, repo, tag string, layer []byte) (digest.Digest, digest.Digest) {
	t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	for _, b := range [][]byte{cfg, layer} {
		if r := request(t, "POST", base+"/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), b); r.StatusCode != 201 {
			t.Fatalf("push blob: %s", r.Status)
		}
	}
	m := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		digest.FromBytes(cfg).String() + `","size":` + itoa(len(cfg)) + `},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` +
		digest.FromBytes(layer).String() + `","size":` + itoa(len(layer)) + `}]}`)
	if r := request(t, "PUT", base+"/v2/"+repo+"/manifests/"+tag, m, "Content-Type", "application/vnd.oci.image.manifest.v1+json"); r.StatusCode != 201 {
		t.Fatalf("push manifest: %s", r.Status)
	}
	return digest.FromBytes(layer), digest.FromBytes(m)
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestGarbageCollection frees the blobs of a deleted manifest only, and
// spares young blobs.
func TestGarbageCollection(t *testing.T) {
	n, srv := standalone(t, Config{})
	keep, _ := push(t, srv.URL, "a", "v1", []byte("layer kept"))
	drop, md := push(t, srv.URL, "b", "v1", []byte("layer dropped"))
	if r := request(t, "DELETE", srv.URL+"/v2/b/manifests/"+md.String(), nil); r.StatusCode != 202 {
		t.Fatalf("delete manifest: %s", r.Status)
	}
	ctx := context.Background()
	rep, err := n.CollectGarbage(ctx, gc.Options{Grace: time.Hour})
	if err != nil || rep.Freed != 0 || rep.Young != 1 {
		t.Fatalf("with grace: %+v, %v", rep, err)
	}
	rep, err = n.CollectGarbage(ctx, gc.Options{DryRun: true})
	if err != nil || rep.Freed != 1 || rep.Held != 3 {
		t.Fatalf("dry run: %+v, %v", rep, err)
	}
	if _, err := n.local.Stat(ctx, drop); err != nil {
		t.Fatalf("dry run freed the blob: %v", err)
	}
	if rep, err = n.CollectGarbage(ctx, gc.Options{}); err != nil || rep.Freed != 1 {
		t.Fatalf("collect: %+v, %v", rep, err)
	}
	if _, err := n.local.Stat(ctx, drop); err == nil {
		t.Error("unreferenced blob survived")
	}
	if r := request(t, "GET", srv.URL+"/v2/b/blobs/"+drop.String(), nil); r.StatusCode != 404 {
		t.Errorf("freed blob still served: %s", r.Status)
	}
	if r := request(t, "GET", srv.URL+"/v2/a/blobs/"+keep.String(), nil); r.StatusCode != 200 {
		t.Errorf("referenced blob gone: %s", r.Status)
	}
}

// TestWebhooks delivers registry:2's envelope for a push.
func TestWebhooks(t *testing.T) {
	got := make(chan []byte, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != notify.EventsMediaType || r.Header.Get("Authorization") != "Bearer x" {
			http.Error(w, "bad request headers", http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(r.Body)
		got <- b
	}))
	defer hook.Close()
	_, srv := standalone(t, Config{Notifications: notify.Config{Endpoints: []notify.Endpoint{{
		Name: "hook", URL: hook.URL, Headers: http.Header{"Authorization": {"Bearer x"}}, Backoff: 10 * time.Millisecond,
		Ignore: notify.Ignore{Actions: []string{api.ActionPull}},
	}}}})
	_, md := push(t, srv.URL, "lib/app", "v1", []byte("layer"))
	deadline := time.After(10 * time.Second)
	for {
		select {
		case b := <-got:
			var env struct{ Events []api.Event }
			if err := json.Unmarshal(b, &env); err != nil {
				t.Fatal(err)
			}
			for _, e := range env.Events {
				if e.Action == api.ActionPull {
					t.Errorf("ignored action delivered: %+v", e)
				}
				if e.Target.Digest == md && e.Action == api.ActionPush && e.Target.Tag == "v1" && e.Target.Repository == "lib/app" &&
					strings.HasPrefix(e.Request.Addr, "127.0.0.1") {
					return
				}
			}
		case <-deadline:
			t.Fatal("no push event for the manifest")
		}
	}
}

// TestRetention keeps the newest tags and those matching a pattern, drops
// old untagged manifests but keeps referrers of kept ones, and the
// collection then frees what they alone referenced.
func TestRetention(t *testing.T) {
	n, srv := standalone(t, Config{GC: gc.Config{Retention: []gc.RetentionPolicy{{
		Repositories: []string{"team/**"}, KeepLast: 2, KeepTags: []string{`^release-`}, UntaggedAfter: time.Nanosecond,
	}}}})
	var layers []digest.Digest
	for _, tag := range []string{"release-1", "a", "b", "c", "d"} {
		l, _ := push(t, srv.URL, "team/app", tag, []byte("layer "+tag))
		layers = append(layers, l)
	}
	push(t, srv.URL, "other", "x", []byte("untouched"))
	rep, err := n.CollectGarbage(context.Background(), gc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tags, _ := n.meta.Tags("team/app", "", 0)
	if strings.Join(tags, ",") != "c,d,release-1" {
		t.Errorf("kept tags %v, want c, d, release-1", tags)
	}
	if rep.Tags != 2 || rep.Manifests != 2 {
		t.Errorf("pruned %d tags and %d manifests, want 2 and 2", rep.Tags, rep.Manifests)
	}
	for i, l := range layers {
		_, err := n.local.Stat(context.Background(), l)
		if gone := err != nil; gone != (i == 1 || i == 2) {
			t.Errorf("layer of tag %d: gone=%v", i, gone)
		}
	}
	if tags, _ := n.meta.Tags("other", "", 0); len(tags) != 1 {
		t.Errorf("a repository no policy matches lost tags: %v", tags)
	}
}
