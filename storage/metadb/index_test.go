package metadb

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/atollhq/atoll/storage"
)

// TestCollectManifests: a record goes once no repository has linked it
// for the grace period, not before, and a record still linked stays.
func TestCollectManifests(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	s, err := Open(path, Options{Reserve: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	gone, kept := manifest("gone", ""), manifest("kept", "")
	for _, step := range []error{
		s.PutManifest(ctx, "a", gone, "v1"),
		s.PutManifest(ctx, "b", gone, ""),
		s.PutManifest(ctx, "a", kept, "v2"),
		s.DeleteManifest(ctx, "a", gone.Descriptor.Digest),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	if n, err := s.CollectManifests(ctx, 0, false); err != nil || n != 0 {
		t.Fatalf("collected %d, %v while b links the record", n, err)
	}
	if err := s.DeleteManifest(ctx, "b", gone.Descriptor.Digest); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CollectManifests(ctx, time.Hour, false); err != nil || n != 0 {
		t.Fatalf("collected %d, %v within the grace period", n, err)
	}
	if n, err := s.CollectManifests(ctx, 0, true); err != nil || n != 1 {
		t.Fatalf("dry run: %d, %v", n, err)
	}
	if !stored(t, s, gone.Descriptor.Digest) {
		t.Fatal("a dry run deleted the record")
	}
	// The grace period counts from the last link's deletion, also after a
	// restart.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, Options{Reserve: -1}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CollectManifests(ctx, time.Hour, false); err != nil || n != 0 {
		t.Fatalf("collected %d, %v within the grace period after a restart", n, err)
	}
	time.Sleep(2 * time.Millisecond) // the stamps' resolution
	if n, err := s.CollectManifests(ctx, time.Millisecond, false); err != nil || n != 1 {
		t.Fatalf("collected %d, %v; want the unlinked record", n, err)
	}
	if stored(t, s, gone.Descriptor.Digest) {
		t.Error("the unlinked record is still on disk")
	}
	if !stored(t, s, kept.Descriptor.Digest) {
		t.Error("a linked record was collected")
	}
	// Pushed again, it is whole again.
	if err := s.PutManifest(ctx, "c", gone, "v1"); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Manifest("c", gone.Descriptor.Digest); err != nil || string(m.Content) != "gone" {
		t.Errorf("pushed again: %v, %v", m, err)
	}
}

// stored reads the record of d from disk.
func stored(t *testing.T, s *Store, d digest.Digest) bool {
	t.Helper()
	var found bool
	_ = s.db.View(func(tx *bolt.Tx) error {
		_, err := readRecord(tx, d)
		found = err == nil
		return nil
	})
	return found
}

// TestIndex: referrers, blob links and sizes follow links, deletes and
// records, and a restart rebuilds the same index.
func TestIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	s, err := Open(path, Options{Reserve: -1, Config: Config{CacheSize: 1 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	subject := manifest("subject", "")
	sig := manifest("signature", subject.Descriptor.Digest)
	sig.Descriptor.ArtifactType = "application/example.sig"
	blob := digest.FromString("layer")
	for _, step := range []error{
		s.PutManifest(ctx, "a", subject, "v1"),
		s.PutManifest(ctx, "a", sig, ""),
		s.PutManifest(ctx, "b", sig, ""),
		s.LinkBlob(ctx, "a", blob, 5),
		s.LinkBlob(ctx, "b", blob, 0),
		s.DeleteManifest(ctx, "b", sig.Descriptor.Digest),
		s.UnlinkBlob(ctx, "b", blob),
		s.LinkBlob(ctx, "c", blob, 0),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	check := func(when string) {
		t.Helper()
		if refs := s.Referrers("a", subject.Descriptor.Digest); len(refs) != 1 || refs[0].Digest != sig.Descriptor.Digest || refs[0].ArtifactType != "application/example.sig" {
			t.Errorf("%s: Referrers(a) = %v", when, refs)
		}
		if refs := s.Referrers("b", subject.Descriptor.Digest); len(refs) != 0 {
			t.Errorf("%s: Referrers(b) = %v after the delete", when, refs)
		}
		if repos := s.BlobRepos(blob); len(repos) != 2 || repos[0] != "a" || repos[1] != "c" {
			t.Errorf("%s: BlobRepos = %v", when, repos)
		}
		if size, ok := s.BlobSize(blob); !ok || size != 5 {
			t.Errorf("%s: BlobSize = %d, %v", when, size, ok)
		}
		if !s.Holds(func(r string) bool { return r == "a" }, sig.Descriptor.Digest) || s.Holds(func(r string) bool { return r == "b" }, sig.Descriptor.Digest) {
			t.Errorf("%s: Holds wrong for the signature", when)
		}
		// A cache of 1 KiB keeps little: reads go to disk and still agree.
		for range 3 {
			if m, err := s.Manifest("a", sig.Descriptor.Digest); err != nil || string(m.Content) != "signature" {
				t.Errorf("%s: Manifest = %v, %v", when, m, err)
			}
		}
		var seen []string
		s.EachManifest(func(repo string, m *storage.Manifest) bool {
			seen = append(seen, repo+" "+string(m.Content))
			return true
		})
		if len(seen) != 2 || seen[0] != "a signature" && seen[1] != "a signature" {
			t.Errorf("%s: EachManifest = %v", when, seen)
		}
	}
	check("live")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, Options{Reserve: -1}); err != nil {
		t.Fatal(err)
	}
	check("after a restart")
	if err := s.UnlinkEverywhere(ctx, []digest.Digest{blob}); err != nil {
		t.Fatal(err)
	}
	if repos := s.BlobRepos(blob); len(repos) != 0 {
		t.Errorf("BlobRepos = %v after UnlinkEverywhere", repos)
	}
}

// TestPutManifests: one batch, and of two puts of one tag the later wins.
func TestPutManifests(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "metadata.db"), Options{Reserve: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	one, two := manifest("one", ""), manifest("two", digest.FromString("one"))
	err = s.PutManifests(ctx, []ManifestPut{
		{Repo: "a", Manifest: one, Tags: []string{"latest", "v1"}},
		{Repo: "a", Manifest: two, Tags: []string{"latest"}},
		{Repo: "b", Manifest: one},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Vector()["local"]; got != 1 {
		t.Errorf("log at %d, want one batch", got)
	}
	if d, _ := s.Tag("a", "latest"); d != two.Descriptor.Digest {
		t.Errorf("latest = %s, want the later put", d)
	}
	if d, _ := s.Tag("a", "v1"); d != one.Descriptor.Digest {
		t.Errorf("v1 = %s", d)
	}
	if _, err := s.Manifest("b", one.Descriptor.Digest); err != nil {
		t.Error(err)
	}
}
