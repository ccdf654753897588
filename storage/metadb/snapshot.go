package metadb

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/atollhq/atoll/storage/diskspace"
	"github.com/atollhq/atoll/storage/metalog"
)

// Snapshots and trimming, for node/metasync: the log is trimmed once every
// member applied it, so a member too far behind to replay it installs a
// snapshot of another member's entries (SnapshotChunk, Install, Advance)
// and replays the log after it. Tombstones (deleted entries) outlive
// their batch in the log so that a snapshot still carries them; they go
// once every member has them (Tombstones, DropTombstones).

// StampAt returns the clock reading of wall time t: every stamp taken
// before t is below it.
func StampAt(t time.Time) uint64 { return uint64(t.UnixMilli()) << 16 }

// snapshotBytes bounds the entries of one chunk (one entry at least).
const snapshotBytes = 8 << 20

// SnapshotChunk returns up to limit entries, tombstones included, with
// keys after after ("" for the first chunk, which also carries the vector,
// read in the same transaction). Chunks are read in separate transactions,
// so the snapshot is fuzzy (see metalog.Chunk).
func (s *snapshots) SnapshotChunk(after string, limit int) (metalog.Chunk, error) {
	var c metalog.Chunk
	err := s.db.View(func(tx *bolt.Tx) error {
		if after == "" {
			c.Vector = metalog.Vector{}
			err := tx.Bucket(bucketVector).ForEach(func(k, v []byte) error {
				c.Vector[string(k)] = binary.BigEndian.Uint64(v)
				return nil
			})
			if err != nil {
				return err
			}
		}
		cur := tx.Bucket(bucketMeta).Cursor()
		k, v := cur.Seek([]byte(after))
		if k != nil && after != "" && string(k) == after {
			k, v = cur.Next()
		}
		// The chunk's keys and values are copied into one buffer each,
		// not one allocation an entry, sized once the chunk's extent is
		// known (appending would copy each about twice more): a member
		// serving a snapshot of millions of entries spends its time
		// sending them, not collecting their garbage. The entries point
		// into the map until then, which the read transaction keeps.
		type span struct{ key, value []byte }
		var (
			spans          []span
			nkeys, nvalues int
			origin         string // the last entry's, shared by the next ones
		)
		for ; k != nil; k, v = cur.Next() {
			if len(spans) >= limit || nkeys+nvalues+32*len(spans) > snapshotBytes {
				break
			}
			stamp, deleted, value, err := peekEntry(v)
			if err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
			if o := peekOrigin(v); string(o) != origin {
				origin = string(o)
			}
			spans = append(spans, span{k, value})
			nkeys, nvalues = nkeys+len(k), nvalues+len(value)
			c.Entries = append(c.Entries, metalog.Op{Deleted: deleted, Stamp: stamp, Origin: origin})
		}
		var keys strings.Builder
		keys.Grow(nkeys)
		values := make([]byte, 0, nvalues)
		for _, sp := range spans {
			keys.Write(sp.key)
			values = append(values, sp.value...)
		}
		allKeys := keys.String()
		k0, v0 := 0, 0
		for i, sp := range spans {
			k1, v1 := k0+len(sp.key), v0+len(sp.value)
			c.Entries[i].Key, c.Entries[i].Value = allKeys[k0:k1], values[v0:v1:v1]
			k0, v0 = k1, v1
		}
		if k != nil && len(c.Entries) > 0 {
			c.Next = c.Entries[len(c.Entries)-1].Key
		}
		return nil
	})
	if err != nil {
		return metalog.Chunk{}, fmt.Errorf("metadata snapshot after %q: %w", after, err)
	}
	return c, nil
}

// Advance raises what the store says it has applied to at least v, once
// a snapshot covering v is installed: the log after v is what it lacks.
// The install's progress (InstallProgress) goes in the same transaction.
func (s *snapshots) Advance(ctx context.Context, v metalog.Vector) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	vec := s.vec.Clone()
	s.mu.RUnlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := dropProgress(tx); err != nil {
			return err
		}
		vb := tx.Bucket(bucketVector)
		for origin, seq := range v {
			if seq <= vec[origin] {
				continue
			}
			vec[origin] = seq
			if err := vb.Put([]byte(origin), binary.BigEndian.AppendUint64(nil, seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return diskspace.Classify(fmt.Errorf("advancing the metadata vector: %w", err))
	}
	s.mu.Lock()
	s.vec = vec
	s.mu.Unlock()
	return nil
}

// trimStep bounds the batches one transaction of Trim deletes.
const trimStep = 10000

// Trim deletes from the log every batch at or below floor (each origin's
// Seq every member has applied) and returns how many went. Since then
// starts an origin's log past the floor.
func (s *snapshots) Trim(ctx context.Context, floor metalog.Vector) (int, error) {
	total := 0
	for origin, seq := range floor {
		for {
			if err := ctx.Err(); err != nil {
				return total, err
			}
			n := 0
			err := s.db.Update(func(tx *bolt.Tx) error {
				cur := tx.Bucket(bucketLog).Cursor()
				prefix := logKey(origin, 0)[:len(origin)+1]
				end := logKey(origin, seq)
				for k, _ := cur.Seek(prefix); k != nil && n < trimStep && bytes.HasPrefix(k, prefix) && bytes.Compare(k, end) <= 0; k, _ = cur.Seek(prefix) {
					if err := cur.Delete(); err != nil {
						return err
					}
					n++
				}
				return nil
			})
			if err != nil {
				return total, fmt.Errorf("trimming the metadata log of %s: %w", origin, err)
			}
			total += n
			if n < trimStep {
				break
			}
		}
	}
	return total, nil
}

// LogLen returns how many batches the log holds.
func (s *snapshots) LogLen() (int, error) {
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketLog).Stats().KeyN
		return nil
	})
	return n, err
}

// Tombstones returns the deleted entries stamped before cutoff.
func (s *snapshots) Tombstones(cutoff uint64) ([]metalog.Op, error) {
	var out []metalog.Op
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).ForEach(func(k, v []byte) error {
			e, err := decodeEntry(v)
			if err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
			if e.deleted && e.stamp < cutoff {
				out = append(out, metalog.Op{Key: string(k), Deleted: true, Stamp: e.stamp, Origin: e.origin})
			}
			return nil
		})
	})
	return out, err
}

// DropTombstones deletes the tombstones ts (from Tombstones) that no op
// replaced since, and returns how many went.
func (s *snapshots) DropTombstones(ctx context.Context, ts []metalog.Op) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		n = 0
		meta := tx.Bucket(bucketMeta)
		for _, t := range ts {
			cur := meta.Get([]byte(t.Key))
			if cur == nil {
				continue
			}
			e, err := decodeEntry(cur)
			if err != nil {
				return fmt.Errorf("key %q: %w", t.Key, err)
			}
			if !e.deleted || e.stamp != t.Stamp || e.origin != t.Origin {
				continue
			}
			if err := meta.Delete([]byte(t.Key)); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("dropping tombstones: %w", err)
	}
	return n, nil
}
