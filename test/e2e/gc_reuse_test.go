package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// TestGCLayerReuse is registry:2's old bug (distribution#3045, #3899): a
// layer no manifest references any more is reused by a new push while a
// collection that takes a while runs. The client's HEAD answers 200, so it
// skips the upload and pushes its manifest; the layer must survive the
// collection. Pushes that reuse the layer run for the whole collection,
// each checked afterwards.
func TestGCLayerReuse(t *testing.T) {
	// Blobs pushed and never used by a manifest are spared for the upload
	// purge age: short here, so that the junk below is collectable.
	n := startNodeWith(t, t.TempDir(), nodeOptions{env: []string{"REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE=2s"}})
	ctx := context.Background()
	c := newClient(n.URL())
	defer c.close()

	layer := []byte("the layer X and Y share " + time.Now().String())
	xConfig := []byte(`{"architecture":"amd64","os":"linux","image":"x"}`)
	for _, b := range [][]byte{layer, xConfig} {
		if err := c.pushMonolithic(ctx, "x", b); err != nil {
			t.Fatal(err)
		}
	}
	x := stressManifest(xConfig, [][]byte{layer})
	if _, err := c.do(ctx, "PUT", "/v2/x/manifests/v1", http.Header{"Content-Type": {ociManifest}}, x, http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	if _, err := c.do(ctx, "DELETE", "/v2/x/manifests/"+digest.FromBytes(x).String(), nil, nil, http.StatusAccepted); err != nil {
		t.Fatal(err)
	}

	// 3000 blobs nothing references, so that the collection takes a while.
	const junk = 3000
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jc := newClient(n.URL())
			defer jc.close()
			for i := w; i < junk; i += 4 {
				if err := jc.pushMonolithic(ctx, "junk", []byte(fmt.Sprintf("junk %d", i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	pushed := time.Now()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	// Past the grace period (3s) and the purge age (2s) since the last
	// blob was pushed.
	if wait := 5*time.Second - time.Since(pushed); wait > 0 {
		time.Sleep(wait) // both are wall-clock times on the server
	}

	type result struct {
		freed int
		took  time.Duration
		err   error
	}
	gcDone := make(chan result, 1)
	go func() {
		start := time.Now()
		freed, _, err := collectGarbage(ctx, n.URL(), "3s")
		gcDone <- result{freed, time.Since(start), err}
	}()

	// Push Y, Y2, ... reusing the layer until the collection ends, the
	// way clients do: HEAD, and upload only when absent.
	var images []string
	heads := map[int]int{}
	var gc result
	for i := 0; ; i++ {
		select {
		case gc = <-gcDone:
		default:
		}
		if gc.took != 0 || gc.err != nil {
			break
		}
		// Half the pushes go to x itself, where the layer is linked; the
		// others to a new repository, which mounts it from x.
		repo, tag := "x", fmt.Sprintf("y%d", i)
		if i%2 == 1 {
			repo, tag = fmt.Sprintf("y%d", i), "v1"
		}
		r, err := c.do(ctx, "HEAD", "/v2/"+repo+"/blobs/"+digest.FromBytes(layer).String(), nil, nil, http.StatusOK, http.StatusNotFound)
		if err != nil {
			t.Fatal(err)
		}
		heads[r.status]++
		if r.status == http.StatusNotFound {
			mr, err := c.do(ctx, "POST", "/v2/"+repo+"/blobs/uploads/?mount="+digest.FromBytes(layer).String()+"&from=x", nil, nil, http.StatusCreated, http.StatusAccepted)
			if err != nil {
				t.Fatal(err)
			}
			if mr.status == http.StatusAccepted {
				if _, err := c.do(ctx, "PUT", withDigest(mr.header.Get("Location"), digest.FromBytes(layer)), octetStream, layer, http.StatusCreated); err != nil {
					t.Fatal(err)
				}
			}
		}
		yConfig := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","image":"y%d"}`, i))
		if err := c.pushMonolithic(ctx, repo, yConfig); err != nil {
			t.Fatal(err)
		}
		y := stressManifest(yConfig, [][]byte{layer})
		if _, err := c.do(ctx, "PUT", "/v2/"+repo+"/manifests/"+tag, http.Header{"Content-Type": {ociManifest}}, y, http.StatusCreated); err != nil {
			t.Fatal(err)
		}
		images = append(images, repo)
	}
	if gc.err != nil {
		t.Fatalf("gc: %v", gc.err)
	}
	t.Logf("collection freed %d blobs in %v while %d pushes reused the layer (HEAD answers: %v)", gc.freed, gc.took.Round(time.Millisecond), len(images), heads)
	if gc.freed < junk || len(images) == 0 {
		t.Fatalf("freed %d blobs (want the %d unreferenced) with %d pushes during the collection", gc.freed, junk, len(images))
	}
	for _, repo := range images {
		if err := c.getBlob(ctx, repo, digest.FromBytes(layer), int64(len(layer))); err != nil {
			t.Errorf("acknowledged image %s lost its reused layer: %v", repo, err)
		}
	}
}

// TestGCToldSurvivesRestart: a blob a client was told exists is spared by
// collections after the member restarts, a clean stop or kill -9, until a
// manifest uses it.
func TestGCToldSurvivesRestart(t *testing.T) {
	n := startNode(t, t.TempDir())
	ctx := context.Background()
	c := newClient(n.URL())
	defer c.close()
	layer := []byte("a layer whose manifest comes after the restart")
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	for _, b := range [][]byte{layer, config} {
		if err := c.pushMonolithic(ctx, "app", b); err != nil {
			t.Fatal(err)
		}
	}
	// kill -9 once what was told is saved (each second).
	pollUntil(t, 10*time.Second, "fence.json records the upload", func() error {
		b, err := os.ReadFile(filepath.Join(n.dataDir, "fence.json"))
		if err != nil || !strings.Contains(string(b), digest.FromBytes(layer).String()) {
			return fmt.Errorf("not yet: %v", err)
		}
		return nil
	})
	for _, restart := range []string{"kill -9", "stop"} {
		if restart == "kill -9" {
			n.Kill()
			n.start()
		} else {
			n.Restart()
		}
		freed, spared, err := collectGarbage(ctx, n.URL(), "0s")
		if err != nil || freed != 0 || spared != 2 {
			t.Fatalf("gc after %s: freed %d, spared %d, err %v; want both told blobs spared", restart, freed, spared, err)
		}
	}
	c = newClient(n.URL())
	m := stressManifest(config, [][]byte{layer})
	if _, err := c.do(ctx, "PUT", "/v2/app/manifests/v1", http.Header{"Content-Type": {ociManifest}}, m, http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	if _, err := c.do(ctx, "DELETE", "/v2/app/manifests/"+digest.FromBytes(m).String(), nil, nil, http.StatusAccepted); err != nil {
		t.Fatal(err)
	}
	if freed, _, err := collectGarbage(ctx, n.URL(), "0s"); err != nil || freed != 2 {
		t.Fatalf("gc once the manifest used and dropped them: freed %d, err %v; want 2", freed, err)
	}
}
