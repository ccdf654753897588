package peer

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/atollhq/atoll/storage/metalog"
)

// SnapshotChunk makes memMetadata a SnapshotSource: each key's last op,
// in key order, limit at a time.
func (m *memMetadata) SnapshotChunk(after string, limit int) (metalog.Chunk, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	latest := map[string]metalog.Op{}
	for _, log := range m.logs {
		for _, b := range log {
			for _, op := range b.Ops {
				if cur, ok := latest[op.Key]; !ok || op.Stamp > cur.Stamp {
					latest[op.Key] = op
				}
			}
		}
	}
	var c metalog.Chunk
	if after == "" {
		c.Vector = make(metalog.Vector)
		for origin, log := range m.logs {
			c.Vector[origin] = uint64(len(log))
		}
	}
	keys := make([]string, 0, len(latest))
	for k := range latest {
		if k > after {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i == limit {
			c.Next = keys[i-1]
			break
		}
		c.Entries = append(c.Entries, latest[k])
	}
	return c, nil
}

// A snapshot crosses in chunks: the first carries the vector, each
// resumes after the last key of the one before, tombstones included; a
// limit out of range is refused.
func TestSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	a, _ := joinPair(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ops := []metalog.Op{
		{Key: "k1", Value: []byte("one"), Stamp: 1, Origin: "a"},
		{Key: "k2", Deleted: true, Stamp: 2, Origin: "a"},
		{Key: "k3", Value: []byte("three"), Stamp: 3, Origin: "a"},
	}
	if err := a.Client().Apply(ctx, "b", []metalog.Batch{{Origin: "a", Seq: 1, Ops: ops}}); err != nil {
		t.Fatal(err)
	}
	first, err := a.Client().Snapshot(ctx, "b", "", 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := (metalog.Vector{"a": 1}); !reflect.DeepEqual(first.Vector, want) || first.Next != "k2" || !reflect.DeepEqual(first.Entries, ops[:2]) {
		t.Errorf("first chunk = %+v, want vector %v, the first two ops, next k2", first, want)
	}
	rest, err := a.Client().Snapshot(ctx, "b", first.Next, 2)
	if err != nil {
		t.Fatal(err)
	}
	if rest.Vector != nil || rest.Next != "" || !reflect.DeepEqual(rest.Entries, ops[2:]) {
		t.Errorf("last chunk = %+v, want the third op alone, no vector, no next", rest)
	}
	if _, err := a.Client().Snapshot(ctx, "b", "", 0); err == nil {
		t.Error("a chunk of 0 entries was answered")
	}
	if _, err := a.Client().Snapshot(ctx, "nobody", "", 1); !errors.Is(err, ErrMemberUnknown) {
		t.Errorf("snapshot of an unknown member: %v, want ErrMemberUnknown", err)
	}
}
