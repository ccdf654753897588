package metadb

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage/metalog"
)

// member opens a store.
func member(t *testing.T, name string) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), name+".db"), Options{Origin: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// ownLog returns the batches of s's own writes.
func ownLog(t *testing.T, s *Store) []metalog.Batch {
	t.Helper()
	bs, err := s.Since(s.origin, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

// snapshot is what a client could observe of a store.
func snapshot(s *Store) map[string]any {
	out := map[string]any{"repos": s.Repositories("", 0)}
	for _, r := range s.Repositories("", 0) {
		tags, _ := s.Tags(r, "", 0)
		for _, tag := range tags {
			d, _ := s.Tag(r, tag)
			out[r+":"+tag] = d
		}
	}
	return out
}

func TestConvergence(t *testing.T) {
	a := member(t, "a")
	b := member(t, "b")
	m1, m2 := manifest("one", ""), manifest("two", "")
	// Concurrent writes to the same tag on two members, and a delete.
	must(t, a.PutManifest(ctx, "r", m1, "latest"))
	must(t, b.PutManifest(ctx, "r", m2, "latest"))
	must(t, a.PutManifest(ctx, "r", m1, "v1"))
	must(t, a.DeleteTag(ctx, "r", "v1"))
	must(t, b.LinkBlob(ctx, "r", digest.FromString("blob"), 0))
	alog, blog := ownLog(t, a), ownLog(t, b)

	c := member(t, "c")
	// a and b exchange in one order, c receives b's log before a's.
	must(t, a.Apply(ctx, blog))
	must(t, b.Apply(ctx, alog))
	must(t, c.Apply(ctx, blog))
	must(t, c.Apply(ctx, alog))
	sa, sb, sc := snapshot(a), snapshot(b), snapshot(c)
	if !reflect.DeepEqual(sa, sb) || !reflect.DeepEqual(sa, sc) {
		t.Fatalf("members diverge:\na %v\nb %v\nc %v", sa, sb, sc)
	}
	if _, ok := sa["r:v1"]; ok {
		t.Error("deleted tag came back")
	}
	if sa["r:latest"] != m2.Descriptor.Digest {
		t.Errorf("latest = %v, want the later write %s", sa["r:latest"], m2.Descriptor.Digest)
	}
	want := metalog.Vector{"a": 3, "b": 2}
	if got := c.Vector(); !reflect.DeepEqual(got, want) {
		t.Errorf("vector = %v, want %v", got, want)
	}
	// Re-applying is a no-op; a batch past a gap is skipped.
	must(t, c.Apply(ctx, alog))
	d := member(t, "d")
	must(t, d.Apply(ctx, alog[1:]))
	if got := d.Vector()["a"]; got != 0 {
		t.Errorf("applied past a gap: vector %d", got)
	}
}

func TestSince(t *testing.T) {
	a := member(t, "a")
	for i := range 5 {
		must(t, a.LinkBlob(ctx, "r", digest.FromString(string(rune('a'+i))), 0))
	}
	got, err := a.Since("a", 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Seq != 3 || got[1].Seq != 4 {
		t.Fatalf("Since(a, 2, 2) = %+v", got)
	}
	if got, _ := a.Since("other", 0, 10); len(got) != 0 {
		t.Errorf("Since of an unknown origin = %v", got)
	}
	// A new member catches up from the log alone.
	b := member(t, "b")
	all, _ := a.Since("a", 0, 100)
	must(t, b.Apply(ctx, all))
	if !reflect.DeepEqual(snapshot(a), snapshot(b)) || len(b.Repositories("", 0)) != 1 {
		t.Errorf("catch-up diverges: %v vs %v", snapshot(a), snapshot(b))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
