package metadb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/diskspace/diskspacetest"
)

// TestReserveFullDisk fills the disk under a store and checks that writes
// adding metadata are refused with storage.ErrNoSpace while every delete
// still commits, that a restart sees them, and that adding works again
// once space returns.
func TestReserveFullDisk(t *testing.T) {
	dir := diskspacetest.Tmpfs(t, 32<<20)
	path := filepath.Join(dir, "metadata.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	// Enough small manifests that deleting them all needs pages past the
	// database's free list: bbolt's log of deletes grows.
	var tags []string
	for i := range 2000 {
		tag := fmt.Sprintf("v%d", i)
		if err := s.PutManifest(ctx, "full/disk", manifest(tag, ""), tag); err != nil {
			t.Fatalf("put before the disk is full: %v", err)
		}
		tags = append(tags, tag)
	}
	filled := diskspacetest.Fill(t, dir, "filler")
	t.Logf("filled %d bytes", filled)

	// Adding is refused once half the reserve is spent, as a full disk.
	pad := strings.Repeat("x", 4<<10)
	var added int
	for ; ; added++ {
		tag := fmt.Sprintf("late%d", added)
		err := s.PutManifest(ctx, "full/disk", manifest(tag+pad, ""), tag)
		if errors.Is(err, storage.ErrNoSpace) {
			break
		}
		if err != nil {
			t.Fatalf("put on a full disk: %v, want ErrNoSpace", err)
		}
		tags = append(tags, tag)
		if added > 10000 {
			t.Fatal("puts never ran out of space")
		}
	}
	t.Logf("%d puts committed into the reserve on a full disk", added)
	if err := s.PutUpload(ctx, &storage.Upload{ID: "u", Repo: "full/disk", Started: time.Now()}); !errors.Is(err, storage.ErrNoSpace) {
		t.Errorf("PutUpload on a full disk: %v, want ErrNoSpace", err)
	}

	// Every delete commits.
	for _, tag := range tags {
		d, err := s.Tag("full/disk", tag)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteManifest(ctx, "full/disk", d); err != nil {
			t.Fatalf("delete manifest %s on a full disk: %v", tag, err)
		}
	}
	if got := s.Repositories("", 0); len(got) != 0 {
		t.Errorf("repositories after deleting everything: %v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, Options{}); err != nil {
		t.Fatalf("reopen on a full disk: %v", err)
	}
	if got := s.Repositories("", 0); len(got) != 0 {
		t.Errorf("repositories after a restart: %v", got)
	}

	// Space returns: adding works again.
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutManifest(ctx, "full/disk", manifest("again", ""), "again"); err != nil {
		t.Errorf("put after space returned: %v", err)
	}
	if err := s.PutUpload(ctx, &storage.Upload{ID: "u", Repo: "full/disk", Started: time.Now()}); err != nil {
		t.Errorf("PutUpload after space returned: %v", err)
	}
}
