package metadb

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestUsage counts each blob once across the matching repositories, from
// the sizes links carry, and survives a reopen.
func TestUsage(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := digest.FromString("a"), digest.FromString("b")
	for _, l := range []struct {
		repo string
		d    digest.Digest
		size int64
	}{{"team/x", a, 100}, {"team/y", a, 100}, {"team/y", b, 0}, {"team/y", b, 50}, {"other", b, 50}} {
		if err := s.LinkBlob(ctx, l.repo, l.d, l.size); err != nil {
			t.Fatal(err)
		}
	}
	team := func(r string) bool { return strings.HasPrefix(r, "team/") }
	check := func(when string, wantBytes int64, wantBlobs int) {
		t.Helper()
		total, each := s.Usage(team)
		if total.Bytes != wantBytes || total.Blobs != wantBlobs {
			t.Errorf("%s: %+v, want %d bytes in %d blobs", when, total, wantBytes, wantBlobs)
		}
		if _, ok := each["other"]; ok {
			t.Errorf("%s: a repository match refuses is counted", when)
		}
	}
	check("linked", 150, 2)
	if !s.Holds(team, a) || s.Holds(team, digest.FromString("c")) {
		t.Error("Holds")
	}
	if size, ok := s.BlobSize(b); !ok || size != 50 {
		t.Errorf("BlobSize = %d, %v", size, ok)
	}
	if err := s.UnlinkBlob(ctx, "team/y", b); err != nil {
		t.Fatal(err)
	}
	check("unlinked", 100, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check("reopened", 100, 1)
}

// TestPin binds a tag once: to the tag's digest when it exists, else to
// the first digest asked; pins make no repository.
func TestPin(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "meta.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	x, y := digest.FromString("x"), digest.FromString("y")
	if got, err := s.Pin(ctx, "app", "v1", x); err != nil || got != x {
		t.Fatalf("first pin: %s, %v", got, err)
	}
	if got, _ := s.Pin(ctx, "app", "v1", y); got != x {
		t.Errorf("second pin moved the tag to %s", got)
	}
	if d, ok := s.Pinned("app", "v1"); !ok || d != x {
		t.Errorf("Pinned = %s, %v", d, ok)
	}
	if names := s.Repositories("", 0); len(names) != 0 {
		t.Errorf("a pin made repositories %v", names)
	}
}
