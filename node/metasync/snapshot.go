package metasync

import (
	"context"
	"fmt"
	"time"

	"github.com/atollhq/atoll/storage/metadb"
	"github.com/atollhq/atoll/storage/metalog"
)

// Snapshots is the part of the local log that trimming and snapshots use
// (storage/metadb's Store). All methods may be called concurrently.
type Snapshots interface {
	// SnapshotChunk returns up to limit entries (each key's latest op,
	// tombstones included) with keys after after; the first chunk carries
	// the vector the state covers.
	SnapshotChunk(after string, limit int) (metalog.Chunk, error)
	// Install merges the chunk asked for after after: entries by last
	// writer wins, and stored keys of its range that it lacks and that
	// are stamped before cutoff are deleted. The vector is left alone.
	Install(ctx context.Context, after string, c metalog.Chunk, cutoff uint64) error
	// Advance raises the vector to at least v.
	Advance(ctx context.Context, v metalog.Vector) error
	// Trim deletes the batches at or below floor from the log.
	Trim(ctx context.Context, floor metalog.Vector) (int, error)
	// Tombstones returns the deleted entries stamped before cutoff.
	Tombstones(cutoff uint64) ([]metalog.Op, error)
	// DropTombstones deletes those of ts nothing replaced since.
	DropTombstones(ctx context.Context, ts []metalog.Op) (int, error)
}

// chunkTries is how often a chunk is asked for before the snapshot is
// given up (the next pull starts it again).
const chunkTries = 3

// installSnapshot installs member p's snapshot, chunk after chunk, each
// asked again on failure from where it stopped, and then raises the
// vector to what the snapshot covers, so the log after it is what remains
// to pull.
//
// Last writer wins across the boundary: entries carry their stamps and
// merge like ops, so neither a snapshot entry older than what is held nor
// a batch older than the snapshot replayed after it replaces a newer
// value. A held key the snapshot lacks is deleted only when stamped
// before the horizon: p kept every tombstone younger than that.
func (r *Replicator) installSnapshot(ctx context.Context, t Transport, p string) error {
	start := time.Now()
	cutoff := metadb.StampAt(start.Add(-r.cfg.Horizon))
	var (
		vec     metalog.Vector
		after   string
		entries int
	)
	for chunks := 1; ; chunks++ {
		c, err := t.Snapshot(ctx, p, after, r.cfg.SnapshotChunk)
		for try := 1; err != nil && try < chunkTries && ctx.Err() == nil; try++ {
			c, err = t.Snapshot(ctx, p, after, r.cfg.SnapshotChunk)
		}
		if err != nil {
			return fmt.Errorf("snapshot of %s after %q: %w", p, after, err)
		}
		if after == "" {
			vec = c.Vector
		}
		if err := r.log.Install(ctx, after, c, cutoff); err != nil {
			return err
		}
		entries += len(c.Entries)
		if chunks%64 == 0 {
			r.slog.Info("installing a metadata snapshot", "member", p, "entries", entries)
		}
		if c.Next == "" {
			break
		}
		after = c.Next
	}
	if err := r.log.Advance(ctx, vec); err != nil {
		return err
	}
	r.slog.Info("installed a metadata snapshot", "member", p, "entries", entries, "took", time.Since(start).Round(time.Millisecond))
	return nil
}
