package metadb

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage/metalog"
)

// appendEntry writes what encodeEntry writes.
func TestAppendEntry(t *testing.T) {
	for _, op := range []metalog.Op{
		{Key: "k", Value: []byte("v"), Stamp: 1 << 40, Origin: "n1"},
		{Key: "k", Deleted: true, Stamp: 7, Origin: ""},
		{Key: "k", Value: bytes.Repeat([]byte("x"), 5000), Stamp: 1, Origin: "a-long-origin"},
	} {
		if got, want := appendEntry([]byte("prefix"), op), append([]byte("prefix"), encodeEntry(op)...); !bytes.Equal(got, want) {
			t.Errorf("appendEntry(%+v) = %x, want %x", op, got, want)
		}
	}
}

// A store's snapshot, taken in small chunks and installed chunk by chunk
// into an empty store, gives it every entry, tombstones included, with
// its stamp and origin.
func TestSnapshotInstallRoundTrip(t *testing.T) {
	ctx := context.Background()
	open := func(name string) *Store {
		s, err := Open(filepath.Join(t.TempDir(), "metadata.db"), Options{Origin: name, Reserve: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open("a"), open("b")
	for i := range 20 {
		if err := a.LinkBlob(ctx, fmt.Sprintf("r%d", i%3), digest.FromString(fmt.Sprint(i)), int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.UnlinkBlob(ctx, "r0", digest.FromString("0")); err != nil {
		t.Fatal(err)
	}
	all := func(s *Store) []metalog.Op {
		c, err := s.SnapshotChunk("", 1000)
		if err != nil {
			t.Fatal(err)
		}
		return c.Entries
	}
	for after := ""; ; {
		c, err := a.SnapshotChunk(after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Install(ctx, after, c, 0); err != nil {
			t.Fatal(err)
		}
		if c.Next == "" {
			break
		}
		after = c.Next
	}
	want, got := all(a), all(b)
	if len(got) != len(want) || len(want) != 20 {
		t.Fatalf("installed %d entries of %d (want 20)", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if w.Key != g.Key || !bytes.Equal(w.Value, g.Value) || w.Deleted != g.Deleted || w.Stamp != g.Stamp || w.Origin != g.Origin {
			t.Errorf("entry %d: installed %+v, want %+v", i, g, w)
		}
	}
	if got, want := b.Repositories("", 0), a.Repositories("", 0); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("repositories %v after install, want %v", got, want)
	}
}

// A snapshot chunk gives each entry its own origin and value where
// entries of several origins interleave (the chunk shares one origin
// string among consecutive entries of the same one).
func TestSnapshotChunkOrigins(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "metadata.db"), Options{Origin: "a", Reserve: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := map[string]metalog.Op{}
	var seq uint64
	for i := range 12 {
		d := digest.FromString(fmt.Sprint(i))
		if i%3 == 0 {
			if err := s.LinkBlob(ctx, "r", d, int64(i+1)); err != nil {
				t.Fatal(err)
			}
			want[string(blobLinkKey("r", d))] = metalog.Op{Origin: "a", Value: []byte(fmt.Sprint(i + 1))}
			continue
		}
		seq++
		op := metalog.Op{Key: string(blobLinkKey("r", d)), Value: []byte(fmt.Sprint(100 + i)), Stamp: uint64(1000 + i), Origin: "c"}
		if err := s.Apply(ctx, []metalog.Batch{{Origin: "c", Seq: seq, Ops: []metalog.Op{op}}}); err != nil {
			t.Fatal(err)
		}
		want[op.Key] = op
	}
	var got []metalog.Op
	for after := ""; ; {
		c, err := s.SnapshotChunk(after, 5)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c.Entries...)
		if c.Next == "" {
			break
		}
		after = c.Next
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for _, g := range got {
		w := want[g.Key]
		if g.Origin != w.Origin || !bytes.Equal(g.Value, w.Value) {
			t.Errorf("%q: origin %q value %q, want %q %q", g.Key, g.Origin, g.Value, w.Origin, w.Value)
		}
	}
}
