package scrub

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metadb"
)

// putManifests opens a metadata store at path holding manifest i of n in
// repository r<i>, and returns it and their digests.
func putManifests(t *testing.T, path string, n int) (*metadb.Store, []digest.Digest) {
	t.Helper()
	s, err := metadb.Open(path, metadb.Options{Origin: "a", Reserve: -1, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var ds []digest.Digest
	for i := range n {
		content := fmt.Appendf(nil, `{"schemaVersion":2,"mark":"record-%d-mark"}`, i)
		d := digest.FromBytes(content)
		m := &storage.Manifest{Descriptor: v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: d, Size: int64(len(content))}, Content: content}
		if err := s.PutManifest(context.Background(), fmt.Sprintf("r%d", i), m, "latest"); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	return s, ds
}

// TestScrubRecords flips a byte of two manifests' records in the database
// file, as a disk might: the scrub finds both. On a member on its own they
// are lost, named with their repositories; with another member holding
// good records (its snapshot entries, as node fetches them) they are
// mended in place and read back good.
func TestScrubRecords(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "metadata.db")
	s, ds := putManifests(t, path, 5)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 3} {
		// Every copy: the pages bbolt freed may hold old ones.
		mark := fmt.Appendf(nil, "record-%d-mark", i)
		if !bytes.Contains(b, mark) {
			t.Fatalf("record %d is not in the file", i)
		}
		for at := bytes.Index(b, mark); at >= 0; at = bytes.Index(b, mark) {
			b[at] ^= 0x20 // r -> R
		}
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = metadb.Open(path, metadb.Options{Origin: "a", Reserve: -1, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	rep := Run(ctx, Deps{Self: "n1", Records: s}, Options{})
	if rep.Manifests != 5 || len(rep.Bad) != 2 || rep.Lost() != 2 || rep.Error != "" {
		t.Fatalf("on its own: %+v", rep)
	}
	index := map[digest.Digest]int{}
	for i, d := range ds {
		index[d] = i
	}
	for _, bad := range rep.Bad {
		i := index[bad.Digest]
		if (i != 1 && i != 3) || !bad.Manifest || bad.Repaired || len(bad.Repositories) != 1 || bad.Repositories[0] != fmt.Sprintf("r%d", i) {
			t.Errorf("bad record %d: %+v", i, bad)
		}
	}

	good, _ := putManifests(t, filepath.Join(dir, "good.db"), 5)
	defer good.Close()
	mend := func(ctx context.Context, d digest.Digest) (string, error) {
		key, before := metadb.RecordKey(d)
		c, err := good.SnapshotChunk(before, 1)
		if err != nil || len(c.Entries) != 1 || c.Entries[0].Key != key {
			return "", fmt.Errorf("n2 has none (%v): %w", err, ErrNoGoodCopy)
		}
		return "n2", s.MendRecord(ctx, c.Entries[0])
	}
	rep = Run(ctx, Deps{Self: "n1", Records: s, MendRecord: mend}, Options{})
	if len(rep.Bad) != 2 || rep.Lost() != 0 || !rep.Bad[0].Repaired || !rep.Bad[1].Repaired || rep.Bad[0].From != "n2" {
		t.Fatalf("with a member holding good records: %+v", rep)
	}
	for i, d := range ds {
		m, err := s.Manifest(fmt.Sprintf("r%d", i), d)
		if err != nil || digest.FromBytes(m.Content) != d {
			t.Errorf("manifest %d after the scrub: %v", i, err)
		}
	}
	if rep = Run(ctx, Deps{Self: "n1", Records: s}, Options{}); len(rep.Bad) != 0 || rep.Manifests != 5 {
		t.Errorf("a scrub after mending: %+v", rep)
	}
}
