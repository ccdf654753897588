package filesystem

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// A blob whose file rotted is moved aside, is then unknown, and a push of
// it stores a good copy (a commit never replaces a blob already there).
func TestQuarantine(t *testing.T) {
	ctx := context.Background()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	good := bytes.Repeat([]byte("layer "), 1000)
	d := digest.FromBytes(good)
	commit(t, s, "u1", good)
	bad := bytes.Clone(good)
	bad[100] ^= 0x20
	if err := os.WriteFile(s.blobPath(d), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	commit(t, s, "u2", good)
	checkBlob(t, s, d, bad) // a push leaves the bad copy: why quarantine exists
	b, err := s.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	where, err := s.Quarantine(ctx, d, b)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(where); err != nil || !bytes.Equal(got, bad) {
		t.Fatalf("quarantined file %s: %d bytes, %v; want the bad copy", where, len(got), err)
	}
	if _, err := s.Stat(ctx, d); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Fatalf("Stat after quarantine: %v, want ErrBlobUnknown", err)
	}
	if blobs, _ := s.Usage(); blobs != 0 {
		t.Fatalf("usage counts %d blobs after quarantine, want 0", blobs)
	}
	commit(t, s, "u3", good)
	checkBlob(t, s, d, good)
	if _, err := s.Quarantine(ctx, d, b); !errors.Is(err, ErrReplaced) {
		t.Fatalf("quarantine of a file no longer at the path: %v, want ErrReplaced", err)
	}
	checkBlob(t, s, d, good) // put back
	if entries, _ := os.ReadDir(s.quarantineDir()); len(entries) != 1 {
		t.Fatalf("quarantine holds %d files, want the one bad copy", len(entries))
	}
	if blobs, _ := s.Usage(); blobs != 1 {
		t.Fatalf("usage counts %d blobs, want 1", blobs)
	}
}

// commit stores content as a blob through upload id.
func commit(t *testing.T, s *Store, id string, content []byte) {
	t.Helper()
	ctx := context.Background()
	w, err := s.Writer(ctx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, digest.FromBytes(content)); err != nil {
		t.Fatal(err)
	}
}
