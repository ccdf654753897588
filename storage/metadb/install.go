package metadb

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/atollhq/atoll/storage/diskspace"
	"github.com/atollhq/atoll/storage/metalog"
)

// Install merges chunk c, the one asked for after the key after, into
// the store in one transaction: each entry replaces the stored one when
// it wins (last writer wins, as for a batch), and a stored key in the
// chunk's range that the chunk lacks is deleted when stamped before
// cutoff, because the member that sent it dropped its tombstone
// (DropTombstones drops none younger than the horizon cutoff stands for).
// Install touches neither the log nor the vector (see Advance), so an
// install cut short anywhere, a crash included, leaves a store that
// still says it lacks the snapshot: the next one merges again.
//
// c's entries must be in key order (SnapshotChunk's are), and consecutive
// chunks may be installed as one (entries concatenated, Next the last
// one's). Sorted keys go into full pages: a fresh member's file ends up
// as dense as a compacted one, in one pass over the chunk's range.
func (s *snapshots) Install(ctx context.Context, after string, c metalog.Chunk, cutoff uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, op := range c.Entries {
		if _, err := parseKey([]byte(op.Key)); err != nil {
			return fmt.Errorf("snapshot entry: %w", err)
		}
		if i > 0 && op.Key <= c.Entries[i-1].Key || op.Key <= after && after != "" {
			return fmt.Errorf("snapshot entry %q out of key order", op.Key)
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.admit(true); err != nil {
		return err
	}
	var changed []metalog.Op
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if changed, err = installChunk(tx.Bucket(bucketMeta), after, c, cutoff); err != nil {
			return err
		}
		return saveProgress(tx, after, c)
	})
	if err != nil {
		return diskspace.Classify(fmt.Errorf("installing metadata snapshot: %w", err))
	}
	s.markRecords(changed)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applyCommitted(changed)
}

// bucketInstall holds the progress of the snapshot being installed, local
// to this member: the vector it will cover, the key installed up to, and
// when it began (InstallProgress). Advance empties it.
var bucketInstall = []byte("install")

var (
	progressVector = []byte("vector") // JSON metalog.Vector
	progressNext   = []byte("next")   // the last key installed
	progressBegan  = []byte("began")  // unix milliseconds, 8 bytes
)

// saveProgress records in tx that chunk c, asked for after the key after,
// is installed. The first chunk (after "") begins an install; a chunk
// carrying a vector past the first (a resumed install's, see
// node/metasync) replaces the vector it will cover.
func saveProgress(tx *bolt.Tx, after string, c metalog.Chunk) error {
	b, err := tx.CreateBucketIfNotExists(bucketInstall)
	if err != nil {
		return err
	}
	if after == "" {
		if err := b.Put(progressBegan, binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixMilli()))); err != nil {
			return err
		}
	}
	if c.Vector != nil {
		v, err := json.Marshal(c.Vector)
		if err != nil {
			return err
		}
		if err := b.Put(progressVector, v); err != nil {
			return err
		}
	}
	if b.Get(progressVector) == nil {
		return nil // a chunk of no install begun here: nothing to resume
	}
	return b.Put(progressNext, []byte(c.Next))
}

// InstallProgress is how far a snapshot install got.
type InstallProgress struct {
	// Vector is what the snapshot covers once every chunk is in.
	Vector metalog.Vector
	// After is the last key installed: the install resumes after it; ""
	// once the last chunk is in.
	After string
	// Began is when the install began.
	Began time.Time
}

// InstallProgress says how far the snapshot being installed got, when one
// was begun and not finished (Advance): the vector it covers, the key to
// resume after ("" once every chunk is in) and when it began. An install
// cut short, by an error or a crash, resumes from there.
func (s *snapshots) InstallProgress() (p InstallProgress, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInstall)
		if b == nil || b.Get(progressVector) == nil || b.Get(progressNext) == nil {
			return nil
		}
		if err := json.Unmarshal(b.Get(progressVector), &p.Vector); err != nil {
			return err
		}
		p.After = string(b.Get(progressNext))
		if v := b.Get(progressBegan); len(v) == 8 {
			p.Began = time.UnixMilli(int64(binary.BigEndian.Uint64(v)))
		}
		ok = true
		return nil
	})
	if err != nil {
		return InstallProgress{}, false, fmt.Errorf("reading the snapshot install's progress: %w", err)
	}
	return p, ok, nil
}

// dropProgress forgets the install in progress, in tx.
func dropProgress(tx *bolt.Tx) error {
	if tx.Bucket(bucketInstall) == nil {
		return nil
	}
	return tx.DeleteBucket(bucketInstall)
}

// held is what Install needs of a stored entry: whether it wins, and
// whether it is a tombstone.
type held struct {
	stamp   uint64
	origin  string
	deleted bool
}

// installChunk is Install's transaction: it reads the stored entries of
// the chunk's range once, then writes the entries that win and deletes
// the stale keys, and returns the ops that changed the state.
func installChunk(meta *bolt.Bucket, after string, c metalog.Chunk, cutoff uint64) ([]metalog.Op, error) {
	stored := map[string]held{}
	cur := meta.Cursor()
	k, v := cur.Seek([]byte(after))
	for ; k != nil && (c.Next == "" || string(k) <= c.Next); k, v = cur.Next() {
		if after != "" && string(k) == after {
			continue
		}
		e, err := decodeEntry(v)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		stored[string(k)] = held{stamp: e.stamp, origin: e.origin, deleted: e.deleted}
	}
	// Entries come in key order: with nothing stored past them (a fresh
	// member), every put appends to the last page, which a fill of 1
	// leaves full.
	meta.FillPercent = 1
	// Keys and entries are put from one buffer, which bbolt holds on to
	// until the commit, not from an allocation each.
	n := 0
	for _, op := range c.Entries {
		n += len(op.Key) + 11 + len(op.Origin) + len(op.Value)
	}
	buf := make([]byte, 0, n)
	changed := make([]metalog.Op, 0, len(c.Entries))
	for _, op := range c.Entries {
		if e, ok := stored[op.Key]; ok {
			delete(stored, op.Key)
			if !wins(op, entry{stamp: e.stamp, origin: e.origin}) {
				continue
			}
		}
		start := len(buf)
		buf = append(buf, op.Key...)
		mid := len(buf)
		buf = appendEntry(buf, op)
		if err := meta.Put(buf[start:mid:mid], buf[mid:len(buf):len(buf)]); err != nil {
			return nil, err
		}
		changed = append(changed, op)
	}
	for k, e := range stored {
		if e.stamp >= cutoff {
			continue
		}
		if err := meta.Delete([]byte(k)); err != nil {
			return nil, err
		}
		if !e.deleted {
			changed = append(changed, metalog.Op{Key: k, Deleted: true, Stamp: e.stamp, Origin: e.origin})
		}
	}
	return changed, nil
}

// appendEntry appends op as encodeEntry encodes it to b.
func appendEntry(b []byte, op metalog.Op) []byte {
	b = binary.BigEndian.AppendUint64(b, op.Stamp)
	deleted := byte(0)
	if op.Deleted {
		deleted = 1
	}
	b = append(b, deleted)
	b = binary.BigEndian.AppendUint16(b, uint16(len(op.Origin)))
	b = append(b, op.Origin...)
	return append(b, op.Value...)
}
