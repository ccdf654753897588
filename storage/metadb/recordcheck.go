package metadb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metalog"
)

// bbolt keeps no checksum of a value: a bit that flips in a manifest
// record on disk would be served as it is, fail every pull of the image,
// and go to every member that installs a snapshot from this one. A scrub
// (node/scrub) reads every record back with CheckRecords and, in a
// cluster, replaces a bad one with another member's (MendRecord).

// A badSet holds the manifest records a check found bad and nothing has
// mended yet. Reads answer them unknown rather than serve bytes known to
// be wrong, and a push of the manifest writes its record again: on a
// member on its own that is the way back. It lives in memory; the next
// check after a restart finds them again. The zero value is empty.
type badSet struct {
	n    atomic.Int32 // len(keys), read first: reads pay nothing while empty
	mu   sync.Mutex
	keys map[dkey]struct{}
}

func (b *badSet) has(k dkey) bool {
	if b.n.Load() == 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.keys[k]
	return ok
}

// set puts k in the set or takes it out; taking a key out of an empty
// set costs nothing.
func (b *badSet) set(k dkey, bad bool) {
	if !bad && b.n.Load() == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if bad {
		if b.keys == nil {
			b.keys = map[dkey]struct{}{}
		}
		b.keys[k] = struct{}{}
	} else {
		delete(b.keys, k)
	}
	b.n.Store(int32(len(b.keys)))
}

// markRecords checks the records among ops, just committed (a push's,
// another member's batch or snapshot): one that does not match its digest
// joins the bad set, one that does (or a deletion) leaves it. A record that
// went bad on another member's disk and came here in its log or snapshot
// is so answered unknown rather than served, until a scrub here mends it
// from a member that has it good. It hashes outside the locks.
func (c *core) markRecords(ops []metalog.Op) {
	for _, op := range ops {
		if !isRecordKey(op.Key) {
			continue
		}
		d := digest.Digest(op.Key[2:])
		k, _ := keyOf(d)
		c.bad.set(k, !op.Deleted && verifyRecord(d, op.Value) != nil)
	}
}

// recordChunk is how many records CheckRecords reads in one read
// transaction: a long check pins no pages for long.
const recordChunk = 1000

// A BadRecord is a manifest record whose bytes do not match its digest.
type BadRecord struct {
	Digest  digest.Digest
	Problem string
	// Repositories link the manifest.
	Repositories []string
}

// CheckRecords reads back every manifest record and checks it against its
// digest, calls bad with each that does not match (and keeps it in the
// bad set), outside any transaction, so that bad may mend it, and returns
// how many it checked. Writes go on meanwhile; a record deleted before it
// is read is not checked.
func (s *recordChecks) CheckRecords(ctx context.Context, bad func(BadRecord)) (checked int, err error) {
	prefix := []byte{'m', sep[0]}
	after := prefix
	for {
		if err := ctx.Err(); err != nil {
			return checked, err
		}
		var found []BadRecord
		n, last := 0, []byte(nil)
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketMeta).Cursor()
			k, v := c.Seek(after)
			if bytes.Equal(k, after) {
				k, v = c.Next()
			}
			var at []byte // the last key read, valid in tx
			for ; k != nil && bytes.HasPrefix(k, prefix) && n < recordChunk; k, v = c.Next() {
				at = k
				d := digest.Digest(k[len(prefix):])
				problem, live := checkRecord(d, v)
				if !live {
					continue
				}
				n++
				if problem != "" {
					found = append(found, BadRecord{Digest: d, Problem: problem})
				} else {
					k, _ := keyOf(d)
					s.bad.set(k, false) // found bad before, written again since
				}
			}
			last = slices.Clone(at)
			return nil
		})
		if err != nil {
			return checked, fmt.Errorf("checking manifest records: %w", err)
		}
		checked += n
		for _, b := range found {
			k, _ := keyOf(b.Digest)
			s.bad.set(k, true)
			s.cache.forget(k)
			b.Repositories = s.holders(b.Digest)
			bad(b)
		}
		if last == nil {
			return checked, nil
		}
		after = last
	}
}

// checkRecord checks v, the stored entry of manifest d's record: what is
// wrong with it (empty: nothing), and whether it is live (not a
// tombstone).
func checkRecord(d digest.Digest, v []byte) (problem string, live bool) {
	if err := d.Validate(); err != nil {
		return fmt.Sprintf("its key is not a digest: %v", err), true
	}
	_, deleted, value, err := peekEntry(v)
	if err != nil {
		return fmt.Sprintf("unreadable: %v", err), true
	}
	if deleted {
		return "", false
	}
	if err := verifyRecord(d, value); err != nil {
		return err.Error(), true
	}
	return "", true
}

// verifyRecord checks that value, a record of manifest d, decodes and
// holds content of digest d and of the size it records.
func verifyRecord(d digest.Digest, value []byte) error {
	var desc v1.Descriptor
	var content []byte
	if len(value) > 0 && value[0] == recordV1 { // the content not copied
		h, c, err := decodeBinary(value, d)
		if err != nil {
			return fmt.Errorf("undecodable: %w", err)
		}
		desc, content = h.Descriptor, c
	} else {
		m, err := decodeRecordOf(value, d)
		if err != nil {
			return fmt.Errorf("undecodable: %w", err)
		}
		desc, content = m.Descriptor, m.Content
	}
	if k, plain := keyOf(d); plain { // sha256: no hex, no allocation
		if sha256.Sum256(content) != k {
			return fmt.Errorf("%w: the content hashes to %s", storage.ErrDigestMismatch, digest.FromBytes(content))
		}
	} else if d.Algorithm().Available() {
		if got := d.Algorithm().FromBytes(content); got != d {
			return fmt.Errorf("%w: the content hashes to %s", storage.ErrDigestMismatch, got)
		}
	}
	if desc.Digest != d || desc.Size != int64(len(content)) {
		return fmt.Errorf("%w: the record describes %s of %d bytes, its content is %d bytes",
			storage.ErrDigestMismatch, desc.Digest, desc.Size, len(content))
	}
	return nil
}

// holders lists the repositories that link manifest d.
func (s *recordChecks) holders(d digest.Digest) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, _ := keyOf(d)
	rec, ok := s.st.records[k]
	if !ok {
		return nil
	}
	var names []string
	s.st.eachRepo(k, rec, func(r *repo) bool {
		names = append(names, r.name)
		return false // on to the next
	})
	slices.Sort(names)
	return names
}

// ErrRecordGone says the record to mend was deleted meanwhile.
var ErrRecordGone = errors.New("the record is gone: deleted meanwhile")

// MendRecord replaces this member's record of a manifest with op, another
// member's entry of the same key (Snapshots' Chunk), once op's record is
// found to match its digest: storage.ErrDigestMismatch, wrapped, when it
// does not. The stored entry keeps its stamp and origin, so nothing is
// replicated and last-writer-wins is untouched: the record is the same
// content-addressed manifest, its bytes mended. ErrRecordGone when this
// member has no live record of the key any more.
func (s *recordChecks) MendRecord(ctx context.Context, op metalog.Op) error {
	k, err := parseKeyString(op.Key)
	if err != nil || k.manifest == "" {
		return fmt.Errorf("mending %q: not a manifest record's key", op.Key)
	}
	d := k.manifest
	if op.Deleted {
		return fmt.Errorf("mending %s: the other member's record is deleted", d)
	}
	if err := verifyRecord(d, op.Value); err != nil {
		return fmt.Errorf("mending %s: the other member's record: %w", d, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	mended := op
	err = s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		cur := meta.Get([]byte(op.Key))
		if cur == nil {
			return ErrRecordGone
		}
		stamp, deleted, value, err := peekEntry(cur)
		if err == nil { // else the entry's head is bad too: op's is taken
			if deleted {
				return ErrRecordGone
			}
			if bytes.Equal(value, op.Value) {
				return nil
			}
			mended.Stamp, mended.Origin = stamp, string(peekOrigin(cur))
		}
		return meta.Put([]byte(op.Key), encodeEntry(mended))
	})
	if err != nil {
		return fmt.Errorf("mending %s: %w", d, err)
	}
	s.mu.Lock()
	err = s.st.applyRecord(d, mended) // its head may have been what was bad
	s.st.settle()
	s.mu.Unlock()
	kd, _ := keyOf(d)
	s.bad.set(kd, false)
	s.cache.forget(kd)
	return err
}

// RecordKey returns the key of manifest d's record in the replicated key
// space, and a key just before it: a snapshot chunk of one entry after
// before is the record's, when the member has one. Between the two lie
// only keys longer than before that begin with it, and no digest of d's
// algorithm is longer than d. It is ASCII, as a snapshot request's key
// must be valid UTF-8.
func RecordKey(d digest.Digest) (key, before string) {
	key = string(manifestKey(d))
	last := len(key) - 1
	return key, key[:last] + string(key[last]-1)
}
