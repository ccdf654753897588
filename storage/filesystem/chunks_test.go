package filesystem

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// TestChunkBudget: uploads take direct-I/O chunks while the store's budget
// lasts; the next one is written through the page cache with small chunks
// and holds none of the budget; an upload that wants more chunks than the
// budget has left makes do with its own; every blob reads back whole; a
// finished upload gives its chunks back.
func TestChunkBudget(t *testing.T) {
	ctx := context.Background()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.chunks = newChunkPool(2 * chunkSize)
	open := func(id string) *writer {
		t.Helper()
		w, err := s.Writer(ctx, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		return w.(*writer)
	}
	commit := func(w *writer, n int) {
		t.Helper()
		data := make([]byte, n)
		_, _ = rand.Read(data)
		if _, err := w.ReadFrom(bytes.NewReader(data)); err != nil {
			t.Fatalf("ReadFrom: %v", err)
		}
		d := digest.FromBytes(data)
		if err := w.Commit(ctx, d); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		checkBlob(t, s, d, data)
	}

	a, b := open("a"), open("b")
	if !a.p.direct || !b.p.direct || len(s.chunks.tokens) != 2 {
		t.Fatalf("two uploads under a budget of two chunks: direct %v and %v, %d chunks out", a.p.direct, b.p.direct, len(s.chunks.tokens))
	}
	c := open("c")
	if c.p.direct || c.f.direct || len(s.chunks.tokens) != 2 {
		t.Fatalf("an upload past the budget: chunks direct %v, file direct %v, %d chunks out (want false, false, 2)", c.p.direct, c.f.direct, len(s.chunks.tokens))
	}
	commit(c, 5*smallChunk+align+7)
	commit(a, 3*chunkSize+11) // more chunks than the budget has: a uses its one
	if len(a.p.chunks) != 0 || len(s.chunks.tokens) != 1 {
		t.Fatalf("after the first upload's commit: it holds %d chunks, %d out of the budget (want 0, 1)", len(a.p.chunks), len(s.chunks.tokens))
	}
	d := open("d")
	if !d.p.direct {
		t.Fatal("an upload after one gave its chunk back did not get a direct-I/O chunk")
	}
	if err := d.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	commit(b, chunkSize/3)
	if n := len(s.chunks.tokens); n != 0 {
		t.Fatalf("all uploads over: %d chunks out of the budget", n)
	}
}

func checkBlob(t *testing.T, s storage.BlobStore, d digest.Digest, want []byte) {
	t.Helper()
	b, err := s.Open(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("blob %s read back: %d bytes of %d, %v; differs", d, len(got), len(want), err)
	}
}
