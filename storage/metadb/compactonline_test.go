package metadb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atollhq/atoll/storage"
)

// TestOnlineCompactionUnderChurn retags one tag over and over and puts,
// deletes and collects big manifests, while readers read a kept manifest
// from disk (no cache) and a trimmer trims the whole log and compacts the
// file online whenever it is sparse. No write or read may fail or be
// lost, and once the churn stops the file comes back within 2x of its
// size before, without a reopen; a reopen then finds every write.
func TestOnlineCompactionUnderChurn(t *testing.T) {
	retags, bigs := 10_000, 16
	if raceDetector {
		retags, bigs = 3_000, 8
	}
	path := filepath.Join(t.TempDir(), "metadata.db")
	opts := Options{NoSync: true, Config: Config{CacheSize: -1}} // reads hit the file; the reserve follows it
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	kept := manifest(strings.Repeat("k", 3000), "")
	a, b := manifest(strings.Repeat("a", 441), ""), manifest(strings.Repeat("b", 441), "")
	for _, put := range []struct {
		repo, tag string
		m         *storage.Manifest
	}{{"kept", "v1", kept}, {"churn", "latest", a}, {"churn", "latest", b}} {
		if err := s.PutManifest(ctx, put.repo, put.m, put.tag); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.compactOnline(ctx, true); err != nil {
		t.Fatal(err)
	}
	before := fileSize(t, path)

	var (
		wg, bg      sync.WaitGroup
		stop        = make(chan struct{})
		errs        = make(chan error, 64)
		reads       atomic.Int64
		compactions atomic.Int64
		again       atomic.Int64
		maxSize     atomic.Int64
		fail        = func(err error) {
			select {
			case errs <- err:
			default:
			}
		}
	)
	wg.Go(func() { // retags, ending on b
		for i := range retags {
			m := a
			if i%2 == 1 {
				m = b
			}
			if err := s.PutManifest(ctx, "churn", m, "latest"); err != nil {
				fail(fmt.Errorf("retag %d: %w", i, err))
				return
			}
		}
	})
	wg.Go(func() { // big manifests put, deleted and collected
		for i := range bigs {
			m := manifest(fmt.Sprintf("%d%s", i, strings.Repeat("x", 1<<20)), "")
			if err := s.PutManifest(ctx, "big", m, "latest"); err != nil {
				fail(fmt.Errorf("big %d: %w", i, err))
				return
			}
			if err := s.DeleteManifest(ctx, "big", m.Descriptor.Digest); err != nil {
				fail(fmt.Errorf("delete big %d: %w", i, err))
				return
			}
			if _, err := s.CollectManifests(ctx, 0, false); err != nil {
				fail(fmt.Errorf("collect %d: %w", i, err))
				return
			}
		}
	})
	for range 1 {
		bg.Go(func() { // a reader: the kept manifest, from disk
			for {
				select {
				case <-stop:
					return
				default:
				}
				m, err := s.Manifest("kept", kept.Descriptor.Digest)
				if err != nil || string(m.Content) != string(kept.Content) {
					fail(fmt.Errorf("read kept: %v", err))
					return
				}
				if d, err := s.Tag("kept", "v1"); err != nil || d != kept.Descriptor.Digest {
					fail(fmt.Errorf("tag kept: %s, %v", d, err))
					return
				}
				reads.Add(1)
			}
		})
	}
	bg.Go(func() { // the trimmer, as metasync runs it on a member on its own, every 1000 batches
		tick := time.NewTicker(20 * time.Millisecond)
		var trimmed uint64
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			v := s.Vector()
			if v["local"] < trimmed+1000 {
				continue // as metasync's TrimAfter, smaller
			}
			trimmed = v["local"]
			if _, err := s.Trim(ctx, v); err != nil {
				fail(fmt.Errorf("trim: %w", err))
				return
			}
			if fi, err := os.Stat(path); err == nil {
				maxSize.Store(max(maxSize.Load(), fi.Size()))
			}
			c, err := s.CompactIfSparse(ctx)
			if err != nil {
				fail(fmt.Errorf("compact: %w", err))
				return
			}
			if c.Done {
				compactions.Add(1)
			}
			if c.Again {
				again.Add(1)
			}
		}
	})
	wg.Wait()
	close(stop)
	bg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, err := s.Trim(ctx, s.Vector()); err != nil {
		t.Fatal(err)
	}
	c, err := s.CompactIfSparse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after := fileSize(t, path)
	t.Logf("%d retags, %d 1 MiB manifests put, deleted and collected: %d compactions during the churn (%d copied again), %d reads; file %d KiB before, at most %d KiB seen, %d KiB after (last compaction: %+v)",
		retags, bigs, compactions.Load(), again.Load(), reads.Load(), before>>10, maxSize.Load()>>10, after>>10, c)
	if compactions.Load() == 0 {
		t.Error("no compaction ran during the churn")
	}
	if after > 2*before {
		t.Errorf("file %d bytes after the churn, %d before", after, before)
	}
	check := func(s *Store) {
		t.Helper()
		if d, err := s.Tag("churn", "latest"); err != nil || d != b.Descriptor.Digest {
			t.Errorf("churn:latest = %s, %v", d, err)
		}
		if m, err := s.Manifest("kept", kept.Descriptor.Digest); err != nil || string(m.Content) != string(kept.Content) {
			t.Errorf("kept: %v", err)
		}
		if _, err := s.Tag("big", "latest"); !errors.Is(err, storage.ErrTagUnknown) {
			t.Errorf("big:latest after its deletion: %v", err)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, opts); err != nil {
		t.Fatal(err)
	}
	check(s)
}

// TestCompactionCrash leaves what a crash at each step of an online
// compaction would: a copy half written, a copy whole but not renamed, a
// copy renamed over the file. Open recovers the old file or the new one,
// whole.
func TestCompactionCrash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "metadata.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := manifest(strings.Repeat("m", 2000), "")
	if err := s.PutManifest(ctx, "r", m, "v1"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // a sparse file, over compactMin
		big := manifest(fmt.Sprintf("%d%s", i, strings.Repeat("x", 1<<20)), "")
		if err := s.PutManifest(ctx, "r", big, "big"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteTag(ctx, "r", "big"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CollectManifests(ctx, 0, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Trim(ctx, s.Vector()); err != nil {
		t.Fatal(err)
	}
	sparseSize := fileSize(t, path)

	// Renamed over the file: a crash now leaves the copy, whole. A write
	// after the swap reaches the copy.
	c, err := s.CompactIfSparse(ctx)
	if err != nil || !c.Done {
		t.Fatalf("compaction of a %d-byte file: %+v, %v", sparseSize, c, err)
	}
	if err := s.PutManifest(ctx, "r", m, "v2"); err != nil {
		t.Fatal(err)
	}
	if s.reserve != nil {
		fi, err1 := os.Stat(path)
		rfi, err2 := s.reserve.f.Stat()
		if err := errors.Join(err1, err2); err != nil || !os.SameFile(fi, rfi) {
			t.Errorf("the reserve is not on the compacted file: %v", err)
		}
	}
	crashed := filepath.Join(t.TempDir(), "metadata.db")
	copyFile(t, path, crashed) // what a kill -9 now leaves on disk
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("file %d KiB sparse, %d KiB compacted online (%v writes paused)", sparseSize>>10, fileSize(t, path)>>10, c.Paused)

	// Killed while copying, or after the copy was synced but before the
	// rename (a whole database, here an empty one): the old file is whole
	// and the copy is dropped.
	empty := filepath.Join(t.TempDir(), "empty.db")
	e, err := Open(empty, Options{Reserve: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	for name, tmp := range map[string][]byte{"half a copy": []byte("not a bolt file"), "a whole copy": readFile(t, empty)} {
		if err := os.WriteFile(path+".compact", tmp, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("%s left: %v", name, err)
		}
		if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: not removed at Open: %v", name, err)
		}
		for _, tag := range []string{"v1", "v2"} {
			if d, err := s.Tag("r", tag); err != nil || d != m.Descriptor.Digest {
				t.Errorf("%s left: r:%s = %s, %v", name, tag, d, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s, err = Open(crashed, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tag := range []string{"v1", "v2"} {
		if got, err := s.Manifest("r", m.Descriptor.Digest); err != nil || string(got.Content) != string(m.Content) {
			t.Errorf("killed after the swap: manifest: %v", err)
		}
		if d, err := s.Tag("r", tag); err != nil || d != m.Descriptor.Digest {
			t.Errorf("killed after the swap: r:%s = %s, %v", tag, d, err)
		}
	}
}

// TestWriteDuringCopy: a write that commits while a snapshot is copied,
// writes going on, is in the file swapped in. The snapshot is copied
// again; after snapshotTries copies each overtaken by a write, the file
// is copied with writes paused. Without a write, the first copy is kept.
func TestWriteDuringCopy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	opts := Options{Reserve: -1, Config: Config{CacheSize: -1}}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	m, late := manifest("early", ""), manifest(strings.Repeat("late", 1000), "")
	if err := s.PutManifest(ctx, "r", m, "v1"); err != nil {
		t.Fatal(err)
	}
	writes := 0
	writeDuring := func(copies int) func() {
		return func() {
			if copies--; copies >= 0 {
				writes++
				if err := s.PutManifest(ctx, "r", late, fmt.Sprintf("w%d", writes)); err != nil {
					t.Error(err)
				}
			}
		}
	}
	for _, tc := range []struct {
		writes    int // copies overtaken by a write
		pausedMax int64
		again     bool
		deferred  bool
	}{
		{snapshotTries, pausedCopyMax, true, false},
		{snapshotTries - 1, pausedCopyMax, false, false},
		{0, pausedCopyMax, false, false},
		{snapshotTries, 0, false, true}, // too large to copy with writes paused
	} {
		s.db.copied, s.db.pausedMax = writeDuring(tc.writes), tc.pausedMax
		before := fileSize(t, path)
		c, err := s.compactOnline(ctx, true)
		if err != nil || c.Done == tc.deferred || c.Again != tc.again || c.Deferred != tc.deferred {
			t.Fatalf("compaction with %d copies overtaken by a write, at most %d bytes copied with writes paused: %+v, %v", tc.writes, tc.pausedMax, c, err)
		}
		if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the copy is left: %v", err)
		}
		if tc.deferred && fileSize(t, path) < before {
			t.Error("a deferred compaction replaced the file")
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, opts); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Manifest("r", late.Descriptor.Digest); err != nil || string(got.Content) != string(late.Content) {
		t.Errorf("the manifest written during the copies: %v", err)
	}
	for i := 1; i <= writes; i++ {
		if d, err := s.Tag("r", fmt.Sprintf("w%d", i)); err != nil || d != late.Descriptor.Digest {
			t.Errorf("r:w%d = %s, %v", i, d, err)
		}
	}
}

// TestCompactAfterClose: a compaction asked for once the store is closed
// fails and leaves the file alone.
func TestCompactAfterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	s, err := Open(path, Options{Reserve: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.compactOnline(context.Background(), true); err == nil {
		t.Error("a closed store compacted")
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.WriteFile(to, readFile(t, from), 0o600); err != nil {
		t.Fatal(err)
	}
}
