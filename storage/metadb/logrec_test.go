package metadb

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metalog"
)

// A record in the binary form keeps every field, decodes without
// aliasing the bytes it was read from, and its head reads alone.
func TestRecordRoundTrip(t *testing.T) {
	plain := manifest(strings.Repeat("x", 3000), digest.FromString("s"))
	plain.Descriptor.ArtifactType = "application/vnd.example"
	rich := manifest("rich", "")
	rich.Descriptor.Annotations = map[string]string{"k": `,"content":"`}
	rich.Descriptor.Platform = &v1.Platform{OS: "linux", Architecture: "arm64"}
	for _, m := range []*storage.Manifest{plain, rich, manifest("", "")} {
		rec, err := encodeRecord(m)
		if err != nil {
			t.Fatal(err)
		}
		if len(rec) > len(m.Content)+400 {
			t.Errorf("record of %d bytes for %d of content", len(rec), len(m.Content))
		}
		got, err := decodeRecord(rec)
		if err != nil || !reflect.DeepEqual(got, m) && !(len(m.Content) == 0 && len(got.Content) == 0) {
			t.Errorf("decodeRecord = %+v, %v; want %+v", got, err, m)
		}
		h, err := decodeHead(rec)
		if err != nil || !reflect.DeepEqual(h.Descriptor, m.Descriptor) || h.Subject != m.Subject {
			t.Errorf("decodeHead = %+v, %v", h, err)
		}
		for i := range rec {
			rec[i] = 0
		}
		if got != nil && !bytes.Equal(got.Content, m.Content) {
			t.Errorf("decoded content aliases the record")
		}
	}
	if _, err := decodeHead([]byte{recordV1, 5, 'a'}); !errors.Is(err, errShortRecord) {
		t.Errorf("decodeHead of a cut record: %v", err)
	}
}

// logBytes returns the stored size of s's log.
func logBytes(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLog).ForEach(func(_, v []byte) error { n += len(v); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A manifest's bytes are stored once, in its record, not again in the
// log; the log still gives them back to a member replaying it, and once
// the record is collected it replays to the state the collection left.
func TestLogStoresRecordOnce(t *testing.T) {
	a := member(t, "a")
	big := manifest(strings.Repeat("m", 64<<10), "")
	must(t, a.PutManifest(ctx, "r", big, "v1"))
	if n := logBytes(t, a); n > 1024 {
		t.Errorf("the log holds %d bytes for a manifest of %d", n, len(big.Content))
	}
	snap, err := a.SnapshotChunk("", 1000)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, op := range snap.Entries {
		if op.Key == string(manifestKey(big.Descriptor.Digest)) {
			found = true
			if m, err := decodeRecord(op.Value); err != nil || !bytes.Equal(m.Content, big.Content) {
				t.Errorf("the snapshot's record: %v", err)
			}
		}
	}
	if !found {
		t.Errorf("the snapshot lacks the record")
	}

	// A member replaying the log gets the manifest.
	b := member(t, "b")
	must(t, b.Apply(ctx, ownLog(t, a)))
	if m, err := b.Manifest("r", big.Descriptor.Digest); err != nil || !bytes.Equal(m.Content, big.Content) {
		t.Fatalf("b.Manifest = %v", err)
	}

	// The record goes: the first batch now replays as a tombstone at its
	// own stamp, and the whole log converges to the same state.
	must(t, a.DeleteManifest(ctx, "r", big.Descriptor.Digest))
	if n, err := a.CollectManifests(ctx, 0, false); err != nil || n != 1 {
		t.Fatalf("CollectManifests = %d, %v", n, err)
	}
	log := ownLog(t, a)
	first := log[0].Ops[0]
	if first.Key != string(manifestKey(big.Descriptor.Digest)) || !first.Deleted || first.Stamp == 0 || first.Origin != "a" {
		t.Errorf("the collected record's first op reads back as %+v", first)
	}
	c := member(t, "c")
	must(t, c.Apply(ctx, log))
	must(t, b.Apply(ctx, log))
	for _, s := range []*Store{a, b, c} {
		if _, err := s.Manifest("r", big.Descriptor.Digest); !errors.Is(err, storage.ErrManifestUnknown) {
			t.Errorf("%s: Manifest after collection: %v", s.origin, err)
		}
		if _, ok := s.st.records[dkeyOf(big.Descriptor.Digest)]; ok {
			t.Errorf("%s still indexes the record", s.origin)
		}
	}
	if fmt.Sprint(snapshot(b)) != fmt.Sprint(snapshot(c)) {
		t.Errorf("b %v, c %v", snapshot(b), snapshot(c))
	}

	// Pushed again, the record is back, and the first batch gives it
	// again: the same digest, the same bytes.
	must(t, a.PutManifest(ctx, "r", big, "v2"))
	log = ownLog(t, a)
	if m, err := decodeRecord(log[0].Ops[0].Value); err != nil || log[0].Ops[0].Deleted || !bytes.Equal(m.Content, big.Content) {
		t.Errorf("the first batch after a new push: %+v, %v", log[0].Ops[0], err)
	}
	d := member(t, "d")
	must(t, d.Apply(ctx, log))
	if m, err := d.Manifest("r", big.Descriptor.Digest); err != nil || !bytes.Equal(m.Content, big.Content) {
		t.Errorf("d.Manifest = %v", err)
	}
}

// A batch applied from another member whose record loses to the stored
// one keeps its own value in the log; a log written as JSON still reads.
func TestLogKeepsLosingValues(t *testing.T) {
	a := member(t, "a")
	m := manifest("content", "")
	rec, err := encodeRecord(m)
	if err != nil {
		t.Fatal(err)
	}
	key := string(manifestKey(m.Descriptor.Digest))
	now := a.Stamp()
	must(t, a.Apply(ctx, []metalog.Batch{{Origin: "x", Seq: 1, Ops: []metalog.Op{{Key: key, Value: rec, Stamp: now, Origin: "x"}}}}))
	old := []byte("an older record")
	must(t, a.Apply(ctx, []metalog.Batch{{Origin: "y", Seq: 1, Ops: []metalog.Op{{Key: key, Value: old, Stamp: now - 1, Origin: "y"}}}}))
	got, err := a.Since("y", 0, 10)
	if err != nil || len(got) != 1 || !bytes.Equal(got[0].Ops[0].Value, old) {
		t.Errorf("Since(y) = %+v, %v", got, err)
	}
	legacy := `{"origin":"z","seq":1,"ops":[{"k":"r\u0000z\u0000t\u0000v","v":"c2hhMjU2OjAw","t":7,"o":"z"}]}`
	err = a.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLog).Put(logKey("z", 1), []byte(legacy))
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err = a.Since("z", 0, 10)
	if err != nil || len(got) != 1 || got[0].Ops[0].Stamp != 7 || string(got[0].Ops[0].Value) != "sha256:00" {
		t.Errorf("Since(z) of a JSON batch = %+v, %v", got, err)
	}
}
