package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// The issue 12 repro through the real binary: ten 2 MiB manifests put on
// one tag and deleted again left metadata.db at 237 MB, their records for
// ever. Now a collection drops the records, the next trim round (every 30
// sync intervals, 3 s here) empties the log of what this member on its own
// has applied, and the file is compacted online: it returns to its size
// before the churn while the registry runs, no restart.
func TestMetadataChurnFileSize(t *testing.T) {
	dir := t.TempDir()
	n := startNodeWith(t, dir, nodeOptions{args: []string{"--config", ptWriteConfig(t, "cluster:\n  syncinterval: 100ms\n")}})
	ctx := context.Background()
	c := newClient(n.URL())
	defer c.close()
	cfg, layer := []byte(`{"churn":"config"}`), []byte("churn layer")
	if err := pushImageBlobs(ctx, c, "churn", cfg, layer); err != nil {
		t.Fatal(err)
	}
	kept := paddedManifest(cfg, layer, "kept", 1<<10)
	if _, err := c.do(ctx, "PUT", "/v2/churn/manifests/kept", manifestHeader, kept, http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "metadata.db")
	before := statSize(t, db)
	var gone []digest.Digest
	for i := range 10 {
		m := paddedManifest(cfg, layer, fmt.Sprint(i), 2<<20)
		if _, err := c.do(ctx, "PUT", "/v2/churn/manifests/latest", manifestHeader, m, http.StatusCreated); err != nil {
			t.Fatal(err)
		}
		gone = append(gone, digest.FromBytes(m))
	}
	for _, d := range gone {
		if _, err := c.do(ctx, "DELETE", "/v2/churn/manifests/"+d.String(), nil, nil, http.StatusAccepted); err != nil {
			t.Fatal(err)
		}
	}
	churned := statSize(t, db)
	r, err := c.do(ctx, "POST", "/_atoll/v1/gc?grace=0s", nil, nil, http.StatusOK)
	if err != nil {
		t.Fatal(err)
	}
	if dropped := recordsDropped(t, r.body); dropped != len(gone) {
		t.Errorf("the collection dropped %d manifest records, want %d", dropped, len(gone))
	}
	collected := statSize(t, db)
	// Online: the file comes back within 2x of its size before, the
	// registry running and serving.
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	online := statSize(t, db)
	for ; online > 2*before; online = statSize(t, db) {
		if time.Now().After(deadline) {
			t.Fatalf("metadata.db still %d bytes %v after the collection, %d before the churn", online, time.Since(start).Round(time.Second), before)
		}
		if _, got, err := c.getManifest(ctx, "churn", "kept"); err != nil || got != digest.FromBytes(kept) {
			t.Fatalf("the kept manifest while waiting for the compaction: %s, %v", got, err)
		}
		<-tick.C
	}
	waited := time.Since(start)
	n.Stop()
	if !strings.Contains(n.log.String(), "compacted metadata.db online") {
		t.Error("the log does not say metadata.db was compacted online")
	}
	used, logBytes := pageSizes(t, db)
	line := fmt.Sprintf("metadata churn: ten 2 MiB manifests on one tag, deleted, collected: metadata.db %d KiB before, %d KiB after the churn, %d KiB after the collection, %d KiB %v later, online, no restart (%d KiB of pages, of which the replication log %d KiB)",
		before>>10, churned>>10, collected>>10, online>>10, waited.Round(100*time.Millisecond), used>>10, logBytes>>10)
	t.Log(line)
	reportSummary(line)
	n.start()
	for _, d := range gone {
		if _, err := c.do(ctx, "GET", "/v2/churn/manifests/"+d.String(), http.Header{"Accept": {ociManifest}}, nil, http.StatusNotFound); err != nil {
			t.Errorf("a deleted manifest: %v", err)
		}
	}
	if _, got, err := c.getManifest(ctx, "churn", "kept"); err != nil || got != digest.FromBytes(kept) {
		t.Errorf("the kept manifest after the restart: %s, %v", got, err)
	}
	// A collected record comes back whole when the manifest is pushed again.
	again := paddedManifest(cfg, layer, "0", 2<<20)
	if _, err := c.do(ctx, "PUT", "/v2/churn/manifests/again", manifestHeader, again, http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	if body, _, err := c.getManifest(ctx, "churn", "again"); err != nil || string(body) != string(again) {
		t.Errorf("pushed again: %d bytes, %v", len(body), err)
	}
}

// paddedManifest is an image manifest of config and layer padded to about
// size bytes with an annotation; name makes it unique.
func paddedManifest(cfg, layer []byte, name string, size int) []byte {
	head := strings.TrimSuffix(string(stressManifest(cfg, [][]byte{layer})), "}")
	return []byte(head + `,"annotations":{"name":"` + name + `","pad":"` + strings.Repeat("x", max(0, size-len(head)-40)) + `"}}`)
}

// recordsDropped sums the recordsDropped of a collection's reports.
func recordsDropped(t *testing.T, body []byte) int {
	t.Helper()
	total := 0
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		var rep struct {
			Records int    `json:"recordsDropped"`
			Error   string `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rep); err != nil {
			t.Fatalf("gc report %q: %v", sc.Text(), err)
		}
		if rep.Error != "" {
			t.Fatalf("gc: %s", rep.Error)
		}
		total += rep.Records
	}
	return total
}

func statSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// pageSizes returns the bytes of pages in use in the database at path
// (which no process has open) and the replication log's share of them.
func pageSizes(t *testing.T, path string) (used, log int64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		used = tx.Size()
		if b := tx.Bucket([]byte("log")); b != nil {
			st := b.Stats()
			log = int64(st.LeafAlloc + st.BranchAlloc)
		}
		return nil
	})
	return used, log
}
