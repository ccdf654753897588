package metadb

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// TestReadTxsNeverStale tries to break the invariant of readTxs: with no
// cache, so that every read goes to disk, a manifest reads back from
// every reader as soon as its PutManifest returned, while writers grow the
// file (bolt remaps it) and online compactions swap it underneath; the
// transactions kept idle never outnumber maxIdleTxs.
func TestReadTxsNeverStale(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "metadata.db"), Options{Reserve: -1, NoSync: true, Config: Config{CacheSize: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const writers, readers, rounds = 3, 4, 300
	var (
		written [writers * rounds]atomic.Pointer[digest.Digest] // each once its put returned
		done    = make(chan struct{})
		wrote   sync.WaitGroup
		wg      sync.WaitGroup
		errs    = make(chan error, writers+readers)
	)
	for w := range writers {
		wrote.Add(1)
		go func() {
			defer wrote.Done()
			for i := range rounds {
				m := manifest(fmt.Sprintf(`{"w":%d,"i":%d,"pad":%q}`, w, i, make([]byte, 512)), "")
				if err := s.PutManifest(context.Background(), "r", m, ""); err != nil {
					errs <- err
					return
				}
				d := m.Descriptor.Digest
				if _, err := s.Manifest("r", d); err != nil {
					errs <- fmt.Errorf("read own write %s: %w", d, err)
					return
				}
				written[w*rounds+i].Store(&d)
			}
		}()
	}
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-done:
					return
				default:
				}
				// Newest first: the writes a stale transaction would miss.
				for i := len(written) - 1 - k%7; i >= 0; i -= 7 {
					if d := written[i].Load(); d != nil {
						if _, err := s.Manifest("r", *d); err != nil {
							errs <- fmt.Errorf("read %s: %w", *d, err)
							return
						}
					}
				}
				if got := s.idleTxs(); got > maxIdleTxs {
					errs <- fmt.Errorf("%d transactions idle, more than %d", got, maxIdleTxs)
					return
				}
			}
		}()
	}
	compacted := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 5 && err == nil; i++ {
			var c Compaction
			if c, err = s.compactOnline(context.Background(), true); err == nil && !c.Done && !c.Deferred {
				err = fmt.Errorf("forced compaction %d did nothing: %+v", i, c)
			}
		}
		compacted <- err
	}()
	err = <-compacted
	wrote.Wait()
	close(done)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestReadTxsPausedByWrite: a read keeps its transaction; a write closes
// it, and the next read sees the write; a manifest deleted since reads as
// unknown; after Close a read fails rather than use a kept transaction.
func TestReadTxsPausedByWrite(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "metadata.db"), Options{Reserve: -1, NoSync: true, Config: Config{CacheSize: -1}})
	if err != nil {
		t.Fatal(err)
	}
	a, b := manifest("a", ""), manifest("b", "")
	ctx := context.Background()
	if err := s.PutManifest(ctx, "r", a, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Manifest("r", a.Descriptor.Digest); err != nil {
		t.Fatal(err)
	}
	if got := s.idleTxs(); got != 1 {
		t.Fatalf("after a read: %d transactions idle, want 1", got)
	}
	if err := s.PutManifest(ctx, "r", b, ""); err != nil {
		t.Fatal(err)
	}
	if got := s.idleTxs(); got != 0 {
		t.Fatalf("after a write: %d transactions idle, want 0", got)
	}
	if m, err := s.Manifest("r", b.Descriptor.Digest); err != nil || string(m.Content) != "b" {
		t.Fatalf("read after write: %v, %v", m, err)
	}
	if err := s.DeleteManifest(ctx, "r", a.Descriptor.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Manifest("r", a.Descriptor.Digest); !errors.Is(err, storage.ErrManifestUnknown) {
		t.Fatalf("read after delete: %v, want ErrManifestUnknown", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := s.idleTxs(); got != 0 {
		t.Fatalf("after Close: %d transactions idle, want 0", got)
	}
	if _, err := s.Manifest("r", b.Descriptor.Digest); err == nil {
		t.Fatal("read after Close succeeded")
	}
}

// idleTxs is how many read transactions the store keeps idle.
func (s *core) idleTxs() int {
	s.db.reads.mu.Lock()
	defer s.db.reads.mu.Unlock()
	return len(s.db.reads.idle)
}
