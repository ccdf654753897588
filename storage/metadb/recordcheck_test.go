package metadb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metalog"
)

// TestCheckAndMendRecords flips a byte in two manifest records' content
// and cuts a third's, as a disk might: CheckRecords finds them, naming the
// repositories that link them, and no good one, across read transactions.
// Reads answer them unknown until mended: by a push of the manifest, or by
// MendRecord, which takes another member's good entry and keeps the stored
// stamp, and refuses a bad one and a record deleted meanwhile.
func TestCheckAndMendRecords(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "m.db"), Options{Origin: "a", Reserve: -1, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = recordChunk + 500 // two read transactions
	var ms []*storage.Manifest
	for i := range n {
		m := manifest(fmt.Sprintf(`{"schemaVersion":2,"n":%d}`, i), "")
		ms = append(ms, m)
		if err := s.PutManifest(ctx, fmt.Sprintf("r%d", i%3), m, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutManifest(ctx, "other", ms[7], "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Manifest("r1", ms[7].Descriptor.Digest); err != nil { // cached: the mend must drop it
		t.Fatal(err)
	}
	flipped, cut, pushed := ms[7].Descriptor.Digest, ms[n-1].Descriptor.Digest, ms[5].Descriptor.Digest
	stamp := func(key []byte) (st uint64) {
		_ = s.db.View(func(tx *bolt.Tx) error {
			st, _, _, _ = peekEntry(tx.Bucket(bucketMeta).Get(key))
			return nil
		})
		return st
	}
	before := stamp(manifestKey(flipped))
	err = s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		v := bytes.Clone(meta.Get(manifestKey(flipped)))
		v[len(v)-3] ^= 0x04
		if err := meta.Put(manifestKey(flipped), v); err != nil {
			return err
		}
		v = bytes.Clone(meta.Get(manifestKey(pushed)))
		v[len(v)-3] ^= 0x04
		if err := meta.Put(manifestKey(pushed), v); err != nil {
			return err
		}
		v = bytes.Clone(meta.Get(manifestKey(cut)))
		return meta.Put(manifestKey(cut), v[:len(v)-5])
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func() []BadRecord {
		var bad []BadRecord
		checked, err := s.CheckRecords(ctx, func(b BadRecord) { bad = append(bad, b) })
		if err != nil || checked != n {
			t.Fatalf("CheckRecords: %d checked, %v; want %d", checked, err, n)
		}
		return bad
	}
	bad := check()
	if len(bad) != 3 {
		t.Fatalf("found %d bad records, want 3: %+v", len(bad), bad)
	}
	for _, b := range bad {
		var repos []string
		switch b.Digest {
		case flipped:
			repos = []string{"other", "r1"}
		case cut:
			repos = []string{fmt.Sprintf("r%d", (n-1)%3)}
		case pushed:
			repos = []string{"r2"}
		default:
			t.Fatalf("a good record reported bad: %+v", b)
		}
		if !slices.Equal(b.Repositories, repos) || b.Problem == "" {
			t.Errorf("%s: repositories %v (want %v), problem %q", b.Digest, b.Repositories, repos, b.Problem)
		}
	}

	// A record known bad is not served; a push of its manifest writes it
	// again.
	for repo, m := range map[string]*storage.Manifest{"r1": ms[7], "r2": ms[5]} {
		if _, err := s.Manifest(repo, m.Descriptor.Digest); !errors.Is(err, storage.ErrManifestUnknown) {
			t.Errorf("read of a record found bad: %v, want ErrManifestUnknown", err)
		}
	}
	if err := s.PutManifest(ctx, "r2", ms[5], "again"); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Manifest("r2", pushed); err != nil || !bytes.Equal(m.Content, ms[5].Content) {
		t.Errorf("read after a push mended it: %v", err)
	}

	good := func(i int) metalog.Op {
		rec, err := encodeRecord(ms[i])
		if err != nil {
			t.Fatal(err)
		}
		return metalog.Op{Key: string(manifestKey(ms[i].Descriptor.Digest)), Value: rec, Stamp: 99, Origin: "b"}
	}
	worse := good(7)
	worse.Value = bytes.Clone(worse.Value)
	worse.Value[len(worse.Value)-2] ^= 1
	if err := s.MendRecord(ctx, worse); !errors.Is(err, storage.ErrDigestMismatch) {
		t.Errorf("mending with a bad record: %v, want ErrDigestMismatch", err)
	}
	for _, i := range []int{7, n - 1} {
		if err := s.MendRecord(ctx, good(i)); err != nil {
			t.Fatal(err)
		}
	}
	if bad := check(); len(bad) != 0 {
		t.Errorf("after mending: %+v", bad)
	}
	if got := stamp(manifestKey(flipped)); got != before {
		t.Errorf("the mended entry's stamp is %d, was %d", got, before)
	}
	m, err := s.Manifest("r1", flipped)
	if err != nil || !bytes.Equal(m.Content, ms[7].Content) {
		t.Errorf("read after mending: %v, %q", err, m.Content)
	}

	// A record found bad and then written again by another member's
	// push: the next check finds it good and reads answer again.
	err = s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		v := bytes.Clone(meta.Get(manifestKey(ms[4].Descriptor.Digest)))
		v[len(v)-3] ^= 0x04
		return meta.Put(manifestKey(ms[4].Descriptor.Digest), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if bad := check(); len(bad) != 1 {
		t.Fatalf("found %+v, want the one record flipped", bad)
	}
	again := good(4)
	again.Stamp = s.Stamp() + 1
	if err := s.Apply(ctx, []metalog.Batch{{Origin: "b", Seq: 1, Ops: []metalog.Op{again}}}); err != nil {
		t.Fatal(err)
	}
	if bad := check(); len(bad) != 0 {
		t.Fatalf("after another member wrote it again: %+v", bad)
	}
	if _, err := s.Manifest("r1", ms[4].Descriptor.Digest); err != nil {
		t.Errorf("read of a record written again, after a check: %v", err)
	}

	if err := s.DeleteManifest(ctx, "r2", ms[2].Descriptor.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CollectManifests(ctx, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := s.MendRecord(ctx, good(2)); !errors.Is(err, ErrRecordGone) {
		t.Errorf("mending a collected record: %v, want ErrRecordGone", err)
	}
}

// TestBadRecordArriving: a record that went bad on another member and
// comes in its log or its snapshot is answered unknown here rather than
// served, and found by a check; the good record written later is served.
func TestBadRecordArriving(t *testing.T) {
	ctx := context.Background()
	for _, via := range []string{"log", "snapshot"} {
		t.Run(via, func(t *testing.T) {
			s, err := Open(filepath.Join(t.TempDir(), "m.db"), Options{Origin: "a", Reserve: -1, NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			m := manifest(`{"schemaVersion":2,"arrives":"bad"}`, "")
			d := m.Descriptor.Digest
			rec, err := encodeRecord(m)
			if err != nil {
				t.Fatal(err)
			}
			bad := bytes.Clone(rec)
			bad[len(bad)-4] ^= 0x01
			ops := []metalog.Op{
				{Key: string(manifestKey(d)), Value: bad, Stamp: 10, Origin: "b"},
				{Key: string(manifestLinkKey("r", d)), Stamp: 10, Origin: "b"},
			}
			if via == "log" {
				err = s.Apply(ctx, []metalog.Batch{{Origin: "b", Seq: 1, Ops: ops}})
			} else {
				err = s.Install(ctx, "", metalog.Chunk{Vector: metalog.Vector{"b": 1}, Entries: ops}, 0)
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Manifest("r", d); !errors.Is(err, storage.ErrManifestUnknown) {
				t.Errorf("read of a bad record that arrived: %v, want ErrManifestUnknown", err)
			}
			var found []BadRecord
			if _, err := s.CheckRecords(ctx, func(b BadRecord) { found = append(found, b) }); err != nil || len(found) != 1 || found[0].Digest != d {
				t.Errorf("check: %+v, %v; want %s", found, err, d)
			}
			good := metalog.Op{Key: string(manifestKey(d)), Value: rec, Stamp: 20, Origin: "c"}
			if err := s.Apply(ctx, []metalog.Batch{{Origin: "c", Seq: 1, Ops: []metalog.Op{good}}}); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Manifest("r", d); err != nil || !bytes.Equal(got.Content, m.Content) {
				t.Errorf("read after the good record arrived: %v", err)
			}
		})
	}
}
