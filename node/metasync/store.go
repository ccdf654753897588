package metasync

import (
	"context"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metadb"
	"github.com/atollhq/atoll/storage/metalog"
)

// Store is the metadata store as a cluster member serves it: metadb's
// store, whose writes return once another member holds them too (see
// Replicator.wait). It embeds the store it decorates, so it keeps every
// capability of it (storage.Inventory, Pin, Usage, Stamp, ...); it
// overrides exactly the writes that append a batch to the log. Uploads
// are this member's own and are not replicated. All methods may be called
// concurrently.
type Store struct {
	*metadb.Store
	r *Replicator
}

// Wrap decorates s, whose log r replicates.
func Wrap(s *metadb.Store, r *Replicator) *Store { return &Store{Store: s, r: r} }

var (
	_ storage.Metadata  = (*Store)(nil)
	_ storage.Inventory = (*Store)(nil)
)

// seq is the last batch of this member's log.
func (s *Store) seq() uint64 { return s.Store.Vector()[s.r.self] }

// write runs fn, a write of this member's own, once the member may write
// (Replicator.waitCaughtUp), and then waits for what it appended to the
// log to reach another member (Replicator.wait). A write that appended
// nothing returns at once; one that raced another write waits for both.
func (s *Store) write(ctx context.Context, fn func() error) error {
	if err := s.r.waitCaughtUp(ctx); err != nil {
		return err
	}
	before := s.seq()
	if err := fn(); err != nil {
		return err
	}
	after := s.seq()
	if after == before {
		return nil
	}
	s.r.logGrew(0)
	return s.r.wait(ctx, after)
}

// PutManifest implements storage.Manifests.
func (s *Store) PutManifest(ctx context.Context, repo string, m *storage.Manifest, tag string) error {
	return s.write(ctx, func() error {
		err := s.Store.PutManifest(ctx, repo, m, tag)
		if err == nil {
			s.r.trim.bytes.Add(int64(len(m.Content))) // in the log when new; a retag over-counts: trims sooner
		}
		return err
	})
}

// DeleteManifest implements storage.Manifests.
func (s *Store) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	return s.write(ctx, func() error { return s.Store.DeleteManifest(ctx, repo, d) })
}

// DeleteTag implements storage.Manifests.
func (s *Store) DeleteTag(ctx context.Context, repo, tag string) error {
	return s.write(ctx, func() error { return s.Store.DeleteTag(ctx, repo, tag) })
}

// LinkBlob implements storage.Links.
func (s *Store) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	return s.write(ctx, func() error { return s.Store.LinkBlob(ctx, repo, d, size) })
}

// UnlinkBlob implements storage.Links.
func (s *Store) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	return s.write(ctx, func() error { return s.Store.UnlinkBlob(ctx, repo, d) })
}

// Apply is metadb's Apply, for batches other members push here: what they
// add to the log counts towards trimming (logGrew).
func (s *Store) Apply(ctx context.Context, batches []metalog.Batch) error {
	if err := s.Store.Apply(ctx, batches); err != nil {
		return err
	}
	s.r.logGrew(opBytes(batches))
	return nil
}

// UnlinkEverywhere implements storage.Inventory.
func (s *Store) UnlinkEverywhere(ctx context.Context, ds []digest.Digest) error {
	return s.write(ctx, func() error { return s.Store.UnlinkEverywhere(ctx, ds) })
}

// CompleteUpload implements storage.Uploads: the link it makes replicates.
func (s *Store) CompleteUpload(ctx context.Context, id string, d digest.Digest, size int64) error {
	return s.write(ctx, func() error { return s.Store.CompleteUpload(ctx, id, d, size) })
}

// Pin is metadb's Pin, replicated: the binding holds cluster-wide once it
// returns.
func (s *Store) Pin(ctx context.Context, repo, tag string, d digest.Digest) (digest.Digest, error) {
	var bound digest.Digest
	err := s.write(ctx, func() error {
		var err error
		bound, err = s.Store.Pin(ctx, repo, tag, d)
		return err
	})
	return bound, err
}
