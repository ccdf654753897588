package metadb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/atollhq/atoll/storage"
)

// TestRetagChurnFileSize retags one tag 100,000 times between two
// manifests. The meta bucket keeps its size and the log grows by a link
// and a tag per retag, never the manifest's bytes. The log is trimmed by
// replication (node/metasync), not here: the test empties it the way
// trimming would, and the next Open compacts the file back to within 2x
// of its size before the churn.
func TestRetagChurnFileSize(t *testing.T) {
	retags := 100_000
	if raceDetector {
		retags = 10_000
	}
	path := filepath.Join(t.TempDir(), "metadata.db")
	s, err := Open(path, Options{Reserve: -1, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	a, b := manifest(strings.Repeat("a", 441), ""), manifest(strings.Repeat("b", 441), "")
	for _, m := range []*storage.Manifest{a, b} {
		if err := s.PutManifest(ctx, "r", m, "latest"); err != nil {
			t.Fatal(err)
		}
	}
	before := fileSize(t, path)
	start := time.Now()
	for i := 0; i < retags; i++ {
		m := a
		if i%2 == 1 {
			m = b
		}
		if err := s.PutManifest(ctx, "r", m, "latest"); err != nil {
			t.Fatal(err)
		}
	}
	var metaBytes, logBytes int
	_ = s.db.View(func(tx *bolt.Tx) error {
		st := tx.Bucket(bucketMeta).Stats()
		metaBytes = st.LeafAlloc + st.BranchAlloc
		st = tx.Bucket(bucketLog).Stats()
		logBytes = st.LeafAlloc + st.BranchAlloc
		return nil
	})
	after := fileSize(t, path)
	t.Logf("%d retags in %v: file %d -> %d bytes; meta bucket %d bytes, log %d bytes (%d a retag)",
		retags, time.Since(start).Round(time.Millisecond), before, after, metaBytes, logBytes, logBytes/retags)
	if metaBytes > 4*4096 {
		t.Errorf("meta bucket grew to %d bytes", metaBytes)
	}
	// A retag's batch is ~330 bytes of JSON (a link and a tag); with the
	// manifest's record in it, as before, it took 2 KiB of log pages.
	if logBytes/retags > 768 {
		t.Errorf("the log takes %d bytes a retag: it holds the manifest again", logBytes/retags)
	}
	if after-int64(logBytes) > 2*before+16<<20 { // bbolt grows the file in 16 MiB steps
		t.Errorf("file %d bytes, %d without the log", after, after-int64(logBytes))
	}
	// Trim the whole log, as replication does once every member applied it.
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketLog); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketLog)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{Reserve: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	compacted := fileSize(t, path)
	t.Logf("after trimming the log and reopening: %d bytes", compacted)
	if compacted > 2*before {
		t.Errorf("file %d bytes after compaction, %d before the churn", compacted, before)
	}
	if d, err := s.Tag("r", "latest"); err != nil || d != b.Descriptor.Digest {
		t.Errorf("after compaction latest = %s, %v", d, err)
	}
	if m, err := s.Manifest("r", a.Descriptor.Digest); err != nil || string(m.Content) != string(a.Content) {
		t.Errorf("after compaction manifest = %v, %v", m, err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
