package metadb

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metalog"
)

// TestCacheEvictsUnreadFirst fills a cache past its budget and checks
// what stays: the clock passes over a record read since it was put and
// evicts the first one that was not, within budget; then that the slots
// and the map agree.
func TestCacheEvictsUnreadFirst(t *testing.T) {
	const size, n = 1000, 10 // each entry costs size + cacheOverhead; the budget is n of them
	c := newCache(n * (size + cacheOverhead))
	m := func(i byte) *storage.Manifest { return &storage.Manifest{Content: bytes.Repeat([]byte{i}, size)} }
	for i := range byte(n) {
		c.put(dkey{i}, m(i))
	}
	if c.get(dkey{0}) == nil { // 0 is read
		t.Fatal("entry 0 gone before the budget was exceeded")
	}
	c.put(dkey{n}, m(n)) // evicts 1, the first not read
	for i := range n + 1 {
		want := i != 1
		got := c.get(dkey{byte(i)})
		if (got != nil) != want {
			t.Errorf("entry %d cached: %v, want %v", i, got != nil, want)
		}
		if got != nil && got.Content[0] != byte(i) {
			t.Errorf("entry %d holds manifest %d", i, got.Content[0])
		}
	}
	if c.used != n*(size+cacheOverhead) || len(c.items) != n {
		t.Errorf("used %d bytes in %d entries", c.used, len(c.items))
	}
	c.forget(dkey{3})
	c.put(dkey{2}, m(9)) // replaces
	if got := c.get(dkey{2}); got == nil || got.Content[0] != 9 {
		t.Errorf("entry 2 not replaced")
	}
	if c.get(dkey{3}) != nil || c.used != (n-1)*(size+cacheOverhead) || len(c.items) != n-1 {
		t.Errorf("after forget and replace: used %d bytes in %d entries", c.used, len(c.items))
	}
	c.put(dkey{99}, &storage.Manifest{Content: make([]byte, 2*size)}) // over an eighth: not cached
	if c.get(dkey{99}) != nil {
		t.Error("a manifest of over an eighth of the budget was cached")
	}
	// Every full slot is in the map at its index, and only those; the
	// bytes used are the full slots' costs.
	full, used := 0, int64(0)
	for i, sl := range c.slots {
		if sl.m == nil {
			continue
		}
		full++
		used += sl.cost
		if j, ok := c.items[sl.k]; !ok || int(j) != i {
			t.Fatalf("slot %d holds %v, which the map has at %d (%v)", i, sl.k[0], j, ok)
		}
	}
	if full != len(c.items) || used != c.used || full+len(c.free) != len(c.slots) {
		t.Errorf("%d full slots (%d bytes), %d free of %d; the map has %d, %d bytes used", full, used, len(c.free), len(c.slots), len(c.items), c.used)
	}
}

// TestCacheStaysWithinBudget puts and reads records of random sizes and
// checks, after each, that the cache holds no more than its budget and
// that a record just put is there.
func TestCacheStaysWithinBudget(t *testing.T) {
	const budget = 64 << 10
	c := newCache(budget)
	rng := rand.New(rand.NewPCG(5, 6))
	for step := range 20000 {
		k := dkey{byte(rng.IntN(256)), byte(rng.IntN(4))}
		if rng.IntN(3) == 0 {
			c.get(k)
			continue
		}
		c.put(k, &storage.Manifest{Content: make([]byte, rng.IntN(budget/8-cacheOverhead))})
		if c.used > budget {
			t.Fatalf("step %d: %d bytes used of %d", step, c.used, budget)
		}
		if c.get(k) == nil {
			t.Fatalf("step %d: a record just put is not cached", step)
		}
	}
}

// TestManifestLinkedBeforeItsRecord: a member may apply another's link to
// a manifest before the manifest's record; the read answers unknown, not
// an error or a stale cache entry, until the record comes.
func TestManifestLinkedBeforeItsRecord(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "m.db"), Options{Origin: "a", Reserve: -1, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := manifest(`{"schemaVersion":2}`, "")
	d := m.Descriptor.Digest
	rec, err := encodeRecord(m)
	if err != nil {
		t.Fatal(err)
	}
	link := metalog.Batch{Origin: "b", Seq: 1, Ops: []metalog.Op{{Key: string(manifestLinkKey("r", d)), Stamp: 1, Origin: "b"}}}
	record := metalog.Batch{Origin: "c", Seq: 1, Ops: []metalog.Op{{Key: string(manifestKey(d)), Value: rec, Stamp: 1, Origin: "c"}}}
	if err := s.Apply(ctx, []metalog.Batch{link}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Manifest("r", d); !errors.Is(err, storage.ErrManifestUnknown) {
		t.Fatalf("Manifest before the record: %v, want ErrManifestUnknown", err)
	}
	if err := s.Apply(ctx, []metalog.Batch{record}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Manifest("r", d)
	if err != nil || !bytes.Equal(got.Content, m.Content) {
		t.Fatalf("Manifest after the record: %v, %v", got, err)
	}
	if _, err := s.Manifest("other", d); !errors.Is(err, storage.ErrManifestUnknown) {
		t.Errorf("Manifest of a repository that does not link it: %v", err)
	}
}
