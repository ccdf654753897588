package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/diskspace"
	"github.com/atollhq/atoll/storage/diskspace/diskspacetest"
	miniotest "github.com/atollhq/atoll/test/minio"
)

// spillAll makes s keep every part buffer in a spill file, in a directory
// it returns.
func spillAll(t *testing.T, s *Store) string {
	t.Helper()
	dir := t.TempDir()
	parts, err := newPartPool(s.cfg.PartSize, 0, dir)
	if err != nil {
		t.Fatal(err)
	}
	s.writers.uploads.parts = parts
	return dir
}

// TestSuiteSpilled runs the shared suite with every part spilled to disk.
func TestSuiteSpilled(t *testing.T) {
	srv := miniotest.Start(t)
	suite(t, func(t *testing.T) *Store {
		s := newStore(t, srv, func(c *Config) { c.PartSize = minPartSize })
		spillAll(t, s)
		return s
	})
}

// TestResumeSpilled is TestResumeAcrossRestarts with every part spilled:
// a resumed writer reads its tail into a spill file.
func TestResumeSpilled(t *testing.T) {
	srv := miniotest.Start(t)
	s := newStore(t, srv, nil)
	dir := spillAll(t, s)
	resumeAcrossRestarts(t, s)
	if names, _ := os.ReadDir(dir); len(names) > 0 {
		t.Errorf("spill files left in %s: %d", dir, len(names))
	}
}

// TestPartBudget: writers that each hold a part's worth of bytes and
// stall hold the memory of the budget, not of every part; the ones past
// it spill to unlinked files, and every upload commits whole.
func TestPartBudget(t *testing.T) {
	const (
		writers = 8
		held    = 4 << 20 // past smallTail: each takes a part buffer
		budget  = 2 * minPartSize
	)
	srv := miniotest.Start(t)
	s := newStore(t, srv, func(c *Config) { c.PartSize = minPartSize })
	dir := t.TempDir()
	leftover := filepath.Join(dir, spillPrefix+"crashed")
	if err := os.WriteFile(leftover, []byte("a crashed process's part"), 0o600); err != nil {
		t.Fatal(err)
	}
	parts, err := newPartPool(minPartSize, budget, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("a spill file left by a crash is still there: %v", err)
	}
	s.writers.uploads.parts = parts
	ctx := context.Background()
	data, _ := io.ReadAll(newPattern(held + 12345))

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	ws := make([]*writer, writers)
	for i := range ws {
		w, err := s.Writer(ctx, "u"+string(rune('a'+i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data[:held]); err != nil {
			t.Fatal(err)
		}
		ws[i] = w.(*writer)
	}
	runtime.GC()
	runtime.GC() // and the pooled buffers of hashes done
	runtime.ReadMemStats(&ms)
	grown := int64(ms.HeapInuse) - int64(base)
	inMemory, spilled := 0, 0
	for _, w := range ws {
		if w.buf.f != nil {
			spilled++
		} else if w.buf.pooled {
			inMemory++
		}
	}
	t.Logf("%d writers holding %d bytes each: heap in use grew %.1f MiB; %d parts in memory, %d spilled",
		writers, held, float64(grown)/(1<<20), inMemory, spilled)
	if inMemory != budget/minPartSize || spilled != writers-inMemory {
		t.Errorf("%d parts in memory and %d spilled, want %d and %d", inMemory, spilled, budget/minPartSize, writers-budget/minPartSize)
	}
	if m, sp := s.PartBuffers(); m != inMemory || sp != spilled {
		t.Errorf("PartBuffers() = %d, %d; want %d, %d", m, sp, inMemory, spilled)
	}
	if limit := int64(budget + 4<<20); grown > limit {
		t.Errorf("heap grew %d bytes, want at most %d (the budget)", grown, limit)
	}
	if names, _ := os.ReadDir(dir); len(names) > 0 {
		t.Errorf("spill files are unlinked, but %s holds %d", dir, len(names))
	}

	d := digest.FromBytes(data)
	for i, w := range ws {
		if i%2 == 1 { // half of them resume from a recorded state
			st, err := w.State()
			if err != nil {
				t.Fatal(err)
			}
			_ = w.Close()
			r, err := s.Writer(ctx, w.id, st)
			if err != nil {
				t.Fatal(err)
			}
			w = r.(*writer)
		}
		if _, err := w.Write(data[held:]); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx, d); err != nil {
			t.Fatalf("writer %d: Commit: %v", i, err)
		}
	}
	if got := readBlob(t, s, d); !bytes.Equal(got, data) {
		t.Error("content differs")
	}
	if m, sp := s.PartBuffers(); m != 0 || sp != 0 {
		t.Errorf("after every commit PartBuffers() = %d, %d; want 0, 0", m, sp)
	}
}

// TestSpillDiskFull: a spill file that finds its disk full fails the write
// with storage.ErrNoSpace (507), the writer keeps failing rather than
// store a blob with a hole, and the upload cancels clean with the space
// back.
func TestSpillDiskFull(t *testing.T) {
	srv := miniotest.Start(t)
	s := newStore(t, srv, func(c *Config) { c.PartSize = minPartSize })
	dir := diskspacetest.Tmpfs(t, 8<<20) // one part fits, the second does not
	parts, err := newPartPool(minPartSize, 0, dir)
	if err != nil {
		t.Fatal(err)
	}
	s.writers.uploads.parts = parts
	ctx := context.Background()
	data, _ := io.ReadAll(newPattern(3 * minPartSize))
	w, err := s.Writer(ctx, "full", nil)
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for off := 0; off < len(data) && werr == nil; off += 1 << 20 {
		_, werr = w.Write(data[off : off+1<<20])
	}
	if !errors.Is(werr, storage.ErrNoSpace) {
		t.Fatalf("write past a full spill disk: %v, want ErrNoSpace", werr)
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Error("a write after a failed one succeeded")
	}
	if err := w.Commit(ctx, digest.FromBytes(data)); err == nil {
		t.Error("a commit after a failed write succeeded")
	}
	if err := w.Cancel(ctx); err != nil {
		t.Errorf("Cancel: %v", err)
	}
	if left := leftovers(t, s, "full"); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	sp, err := diskspace.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if used := sp.Total - sp.Free; used > 64<<10 {
		t.Errorf("%d bytes of the spill disk still used", used)
	}
}
