package metadb

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/atollhq/atoll/storage/metalog"
)

// An entry is the stored form of one key's latest op:
//
//	stamp (8 bytes, big endian) | deleted (1) | len(origin) (2) | origin | value
type entry struct {
	stamp   uint64
	deleted bool
	origin  string
	value   []byte
}

func encodeEntry(op metalog.Op) []byte {
	b := make([]byte, 11, 11+len(op.Origin)+len(op.Value))
	binary.BigEndian.PutUint64(b, op.Stamp)
	if op.Deleted {
		b[8] = 1
	}
	binary.BigEndian.PutUint16(b[9:], uint16(len(op.Origin)))
	b = append(b, op.Origin...)
	return append(b, op.Value...)
}

func decodeEntry(b []byte) (entry, error) {
	if len(b) < 11 {
		return entry{}, fmt.Errorf("metadata entry of %d bytes", len(b))
	}
	n := int(binary.BigEndian.Uint16(b[9:]))
	if len(b) < 11+n {
		return entry{}, fmt.Errorf("metadata entry origin past its end")
	}
	return entry{
		stamp:   binary.BigEndian.Uint64(b),
		deleted: b[8] == 1,
		origin:  string(b[11 : 11+n]),
		value:   b[11+n:],
	}, nil
}

// peekEntry decodes entry b but its origin: what the index needs, without
// allocating (value is b's).
func peekEntry(b []byte) (stamp uint64, deleted bool, value []byte, err error) {
	if len(b) < 11 {
		return 0, false, nil, fmt.Errorf("metadata entry of %d bytes", len(b))
	}
	n := int(binary.BigEndian.Uint16(b[9:]))
	if len(b) < 11+n {
		return 0, false, nil, fmt.Errorf("metadata entry origin past its end")
	}
	return binary.BigEndian.Uint64(b), b[8] == 1, b[11+n:], nil
}

// peekOrigin returns the origin of entry b, which peekEntry read without
// error: b's own bytes, not a copy.
func peekOrigin(b []byte) []byte {
	return b[11 : 11+int(binary.BigEndian.Uint16(b[9:]))]
}

// wins reports whether op replaces the stored entry e: last writer wins by
// stamp, ties broken by origin name, so every member picks the same winner.
func wins(op metalog.Op, e entry) bool {
	if op.Stamp != e.stamp {
		return op.Stamp > e.stamp
	}
	return op.Origin > e.origin
}

// merge writes op into meta unless the entry there wins over it, and
// reports whether it wrote it.
func merge(meta *bolt.Bucket, op metalog.Op) (bool, error) {
	if cur := meta.Get([]byte(op.Key)); cur != nil {
		e, err := decodeEntry(cur)
		if err != nil {
			return false, fmt.Errorf("key %q: %w", op.Key, err)
		}
		if !wins(op, e) {
			return false, nil
		}
	}
	if err := meta.Put([]byte(op.Key), encodeEntry(op)); err != nil {
		return false, err
	}
	return true, nil
}

// clock is a hybrid logical clock: wall-clock milliseconds in the high 48
// bits, a counter in the low 16, never going backwards and always past any
// stamp it has seen.
type clock struct {
	mu   sync.Mutex
	last uint64
}

func (c *clock) now() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	pt := uint64(time.Now().UnixMilli()) << 16
	if pt > c.last {
		c.last = pt
	} else {
		c.last++
	}
	return c.last
}

func (c *clock) observe(stamp uint64) {
	c.mu.Lock()
	if stamp > c.last {
		c.last = stamp
	}
	c.mu.Unlock()
}

// Stamp returns a reading of the store's clock, past every stamp it has
// given or seen.
func (s *stamps) Stamp() uint64 { return s.clock.now() }

// Observe moves the store's clock past stamp, so that this member's next
// writes win over the writes another member stamped before it.
func (s *stamps) Observe(stamp uint64) { s.clock.observe(stamp) }

// logKey orders an origin's batches by sequence number.
func logKey(origin string, seq uint64) []byte {
	k := make([]byte, 0, len(origin)+9)
	k = append(k, origin...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}
