package gc

import (
	"errors"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// A collection drops the record of a manifest no repository links once
// the grace period has passed, and keeps it within it.
func TestCollectDropsUnlinkedRecords(t *testing.T) {
	blobs := &memBlobs{blobs: map[digest.Digest][]byte{}, at: time.Now()}
	c, meta, _ := member(t, "n1", blobs)
	d := image(t, meta, "app", "v1", digest.FromString("layer"))
	image(t, meta, "app", "v2", digest.FromString("other"))
	if err := meta.DeleteManifest(ctx, "app", d); err != nil {
		t.Fatal(err)
	}
	if rep, err := c.Collect(ctx, Options{Grace: time.Hour}); err != nil || rep.Records != 0 {
		t.Fatalf("within the grace period: %+v, %v", rep, err)
	}
	if rep, err := c.Collect(ctx, Options{DryRun: true}); err != nil || rep.Records != 1 {
		t.Fatalf("dry run: %+v, %v", rep, err)
	}
	rep, err := c.Collect(ctx, Options{})
	if err != nil || rep.Records != 1 {
		t.Fatalf("after the grace period: %+v, %v", rep, err)
	}
	if rep, err := c.Collect(ctx, Options{}); err != nil || rep.Records != 0 {
		t.Fatalf("a second collection: %+v, %v", rep, err)
	}
	// Pushed again, the manifest is whole.
	image(t, meta, "app", "v1", digest.FromString("layer"))
	if m, err := meta.Manifest("app", d); err != nil || len(m.Content) == 0 {
		t.Fatalf("pushed again: %v, %v", m, err)
	}
	if _, err := meta.Manifest("other", d); !errors.Is(err, storage.ErrManifestUnknown) {
		t.Fatalf("unlinked repository: %v", err)
	}
}
