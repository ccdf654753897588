package metadb

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/atollhq/atoll/storage/metalog"
)

// CollectManifests deletes the manifest records no repository links and
// none has linked for grace, measured from the record's last write or
// its last link's deletion; it returns how many it deleted (or, on a dry
// run, would). node/gc calls it in each collection. The deletion is a
// replicated tombstone like any other.
//
// A push of the same manifest on another member, not yet applied here
// when the tombstone is written, can lose its record to it: PutManifest
// writes the record again whenever no repository links it, so this takes
// a push racing the collection within the replication delay of a record
// unlinked for the whole grace period.
func (s *collector) CollectManifests(ctx context.Context, grace time.Duration, dryRun bool) (int, error) {
	// Stamps hold milliseconds above a 16-bit counter: a record unlinked
	// in the cutoff's millisecond counts, so grace 0 takes every one.
	cutoff := uint64(time.Now().Add(-grace).UnixMilli())
	var n int
	err := s.write(ctx, func(st *state) ([]metalog.Op, error) {
		var ops []metalog.Op
		for k, rec := range st.records {
			if rec.stored && rec.n == 0 && rec.since>>16 <= cutoff {
				ops = append(ops, metalog.Op{Key: string(manifestKey(st.digestOf(k))), Deleted: true})
			}
		}
		n = len(ops)
		if dryRun {
			return nil, nil
		}
		return ops, nil
	}, nil)
	return n, err
}

// Entries calls fn with every entry of the replicated key space, live
// ones and tombstones, as the op that wrote it (key, value, stamp,
// origin, deleted), in key order, from one read transaction: a consistent
// view of the state as of one commit, with the Vector of that commit. It
// stops when fn returns false. For snapshots of the live state.
func (s *collector) Entries(fn func(op metalog.Op) bool) (metalog.Vector, error) {
	vec := metalog.Vector{}
	err := s.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketVector).ForEach(func(k, v []byte) error {
			vec[string(k)] = binary.BigEndian.Uint64(v)
			return nil
		})
		if err != nil {
			return err
		}
		c := tx.Bucket(bucketMeta).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			e, err := decodeEntry(v)
			if err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
			op := metalog.Op{Key: string(k), Value: slices.Clone(e.value), Deleted: e.deleted, Stamp: e.stamp, Origin: e.origin}
			if !fn(op) {
				return nil
			}
		}
		return nil
	})
	return vec, err
}
