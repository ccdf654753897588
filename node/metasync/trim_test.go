package metasync

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage/metadb"
)

// A member on its own (no transport) trims its log as it grows: a round
// runs at once each TrimAfter batches, so churn never lets the log grow
// far, and the periodic round compacts the file back to its size before
// the churn, while the store stays open.
func TestTrimBySizeAlone(t *testing.T) {
	const retags, after = 20000, 1000
	path := filepath.Join(t.TempDir(), "metadata.db")
	s, err := metadb.Open(path, metadb.Options{Origin: "a", NoSync: true})
	must(t, err)
	t.Cleanup(func() { _ = s.Close() })
	cfg := testConfig
	cfg.TrimAfter, cfg.TrimInterval = after, 300*time.Millisecond
	r := New(cfg, Deps{Self: "a", Log: s})
	store := Wrap(s, r)
	x, y := manifest("x"), manifest("y")
	must(t, store.PutManifest(ctx, "r", x, "latest"))
	must(t, store.PutManifest(ctx, "r", y, "latest"))
	before := fileSize(t, path)

	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(runCtx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	longest, largest := 0, before
	for i := range retags {
		m := x
		if i%2 == 1 {
			m = y
		}
		must(t, store.PutManifest(ctx, "r", m, "latest"))
		if i%100 == 0 {
			n, err := s.LogLen()
			must(t, err)
			longest, largest = max(longest, n), max(largest, fileSize(t, path))
		}
	}
	t.Logf("%d retags, a round each %d batches: the log held at most %d batches; the file was %d KiB before, at most %d KiB during the churn",
		retags, after, longest, before>>10, largest>>10)
	// The round is asynchronous: the writer may run ahead of it a while.
	if longest > 5*after {
		t.Errorf("the log reached %d batches, trimmed each %d", longest, after)
	}
	waitFor(t, "the file back within 2x of its size before the churn", func() bool {
		return fileSize(t, path) <= 2*before
	})
	n, err := s.LogLen()
	must(t, err)
	t.Logf("after the next round: file %d KiB, log %d batches", fileSize(t, path)>>10, n)
	if d, err := store.Tag("r", "latest"); err != nil || d != y.Descriptor.Digest {
		t.Errorf("latest = %s, %v", d, err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	must(t, err)
	return fi.Size()
}

// A log that gains TrimAfterBytes of manifests gets a round at once, few
// as its batches are.
func TestTrimByBytesAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	s, err := metadb.Open(path, metadb.Options{Origin: "a", NoSync: true})
	must(t, err)
	t.Cleanup(func() { _ = s.Close() })
	cfg := testConfig
	cfg.TrimAfter, cfg.TrimAfterBytes, cfg.TrimInterval = -1, 1<<20, time.Hour
	r := New(cfg, Deps{Self: "a", Log: s})
	store := Wrap(s, r)
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(runCtx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	for i := range 4 {
		m := manifest(fmt.Sprint(i))
		m.Content = append(m.Content[:len(m.Content)-1:len(m.Content)-1], []byte(`,"pad":"`+strings.Repeat("x", 300<<10)+`"}`)...)
		m.Descriptor.Digest, m.Descriptor.Size = digest.FromBytes(m.Content), int64(len(m.Content))
		must(t, store.PutManifest(ctx, "r", m, "latest"))
	}
	waitFor(t, "a round after 1.2 MiB of manifests", func() bool {
		n, err := s.LogLen()
		must(t, err)
		return n == 0
	})
}
