package pullthrough

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// layerOf pushes an image to the upstream and returns its first layer's
// digest and bytes.
func layerOf(t *testing.T, up *upstream, repo string) (digest.Digest, []byte) {
	t.Helper()
	img := up.push(t, repo, "v1")
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	h, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return digest.Digest(h.String()), b
}

func TestBlobFetchedOnce(t *testing.T) {
	up := newUpstream(t, nil)
	d, want := layerOf(t, up, "app")
	tc := newTestCache(t, hubConfig(up))
	up.mu.Lock()
	up.gate, up.gated = make(chan struct{}), make(chan struct{}, 16)
	up.mu.Unlock()

	const callers = 10
	var started, done sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			started.Done()
			errs <- tc.Blob(context.Background(), "hub/app", d)
		}()
	}
	started.Wait()
	<-up.gated // the one fetch is at the upstream; the others wait on it
	close(up.gate)
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Blob: %v", err)
		}
	}
	if n := up.count("GET blobs"); n != 1 {
		t.Errorf("upstream served %d blob GETs to %d concurrent callers, want 1", n, callers)
	}
	if !tc.stores.meta.BlobLinked("hub/app", d) {
		t.Error("blob not linked into hub/app")
	}
	b, err := tc.stores.blobs.Open(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got, _ := io.ReadAll(b); string(got) != string(want) {
		t.Errorf("stored blob differs from the upstream's (%d bytes, want %d)", len(got), len(want))
	}
}

func TestBlobLinkedIntoSecondRepositoryOnlyIfUpstreamHasIt(t *testing.T) {
	up := newUpstream(t, nil)
	d, _ := layerOf(t, up, "app")
	tc := newTestCache(t, hubConfig(up))
	ctx := context.Background()
	if err := tc.Blob(ctx, "hub/app", d); err != nil {
		t.Fatal(err)
	}
	// Stored now, but hub/other does not hold it upstream.
	if err := tc.Blob(ctx, "hub/other", d); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Errorf("blob of another upstream repository: %v, want ErrBlobUnknown", err)
	}
	if tc.stores.meta.BlobLinked("hub/other", d) {
		t.Error("hub/other links a blob its upstream repository does not hold")
	}
	// Pushed to a second upstream repository: linked without a download.
	up.push(t, "copy", "v1")
	mountBlob(t, up, "copy", "app", d)
	gets := up.count("GET blobs")
	if err := tc.Blob(ctx, "hub/copy", d); err != nil {
		t.Fatalf("blob of a second repository holding it upstream: %v", err)
	}
	if up.count("GET blobs") != gets || up.count("HEAD blobs") == 0 {
		t.Errorf("second repository: %d more GETs and %d HEADs, want 0 and at least 1", up.count("GET blobs")-gets, up.count("HEAD blobs"))
	}
}

// mountBlob links blob d of repository from into repo on the upstream.
func mountBlob(t *testing.T, up *upstream, repo, from string, d digest.Digest) {
	t.Helper()
	resp, err := up.direct.Client().Post(up.direct.URL+"/v2/"+repo+"/blobs/uploads/?mount="+d.String()+"&from="+from, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("mount %s into %s: %d", d, repo, resp.StatusCode)
	}
}

func TestLyingUpstreamBlobStoresNothing(t *testing.T) {
	srv := lying(t)
	tc := newTestCache(t, Config{Proxy: Upstream{RemoteURL: srv.URL}})
	d := digest.FromString("the real content")
	err := tc.Blob(context.Background(), "app", d)
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("blob with other bytes: %v, want ErrUnavailable", err)
	}
	if _, err := tc.stores.blobs.Stat(context.Background(), d); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Errorf("the lie was stored: Stat gave %v", err)
	}
	if tc.stores.meta.BlobLinked("app", d) {
		t.Error("the lie was linked")
	}
	left, err := os.ReadDir(filepath.Join(tc.stores.dir, "uploads"))
	if err != nil || len(left) != 0 {
		t.Errorf("uploads left behind: %v (%v)", left, err)
	}
}
