// Package queue is a durable FIFO of opaque items per named stream, in one
// bbolt file, and the retry loop that drains a stream at least once, in
// order. It is the design of the webhook queue (node/notify) factored out so
// other senders (replication to other registries) share it; notify can adopt
// it without changing its file layout:
//
//	bucket <stream name>
//	    key   8-byte big-endian sequence (the bucket's NextSequence)
//	    value the item, exactly as appended
//
// Keys only grow, across restarts too, so a cursor from First walks a
// stream's items in the order they were appended. An item is removed only
// after its consumer confirmed it, so a crash between the two delivers it
// again.
package queue

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Queue is one queue file. Its methods may be called concurrently.
type Queue struct {
	db *bolt.DB
}

// Item is one queued item and the key Remove takes.
type Item struct {
	Key   []byte
	Value []byte
}

// batchDelay is how long an append waits for concurrent appends to share
// its commit (one fsync for many items under load).
const batchDelay = time.Millisecond

// Open opens (creating it and its directory if needed) the queue file at
// path and creates the buckets of streams.
func Open(path string, streams []string) (*Queue, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("queue directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open queue %s: %w", path, err)
	}
	db.MaxBatchDelay = batchDelay
	err = db.Update(func(tx *bolt.Tx) error {
		for _, s := range streams {
			if _, err := tx.CreateBucketIfNotExists([]byte(s)); err != nil {
				return fmt.Errorf("stream %q: %w", s, err)
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open queue %s: %w", path, err)
	}
	return &Queue{db: db}, nil
}

// Close closes the file.
func (q *Queue) Close() error { return q.db.Close() }

// Lengths returns how many items every stream in the file holds, those
// Open was not given included.
func (q *Queue) Lengths() (map[string]int, error) {
	n := map[string]int{}
	err := q.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			n[string(name)] = b.Stats().KeyN
			return nil
		})
	})
	return n, err
}

// Len returns how many items stream holds.
func (q *Queue) Len(stream string) (int, error) {
	n := 0
	err := q.db.View(func(tx *bolt.Tx) error {
		b, err := bucket(tx, stream)
		if err != nil {
			return err
		}
		n = b.Stats().KeyN
		return nil
	})
	return n, err
}

// Append queues item at the end of each of streams, durably, in one commit
// shared with concurrent appends.
func (q *Queue) Append(streams []string, item []byte) error {
	return q.db.Batch(func(tx *bolt.Tx) error {
		for _, s := range streams {
			b, err := bucket(tx, s)
			if err != nil {
				return err
			}
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), item); err != nil {
				return err
			}
		}
		return nil
	})
}

// Peek returns up to limit of the oldest items of stream.
func (q *Queue) Peek(stream string, limit int) ([]Item, error) {
	var out []Item
	err := q.db.View(func(tx *bolt.Tx) error {
		b, err := bucket(tx, stream)
		if err != nil {
			return err
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			// bbolt's slices live only as long as the transaction.
			out = append(out, Item{Key: append([]byte(nil), k...), Value: append([]byte(nil), v...)})
		}
		return nil
	})
	return out, err
}

// Remove deletes the items with keys from stream.
func (q *Queue) Remove(stream string, keys [][]byte) error {
	return q.db.Update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, stream)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

func bucket(tx *bolt.Tx, stream string) (*bolt.Bucket, error) {
	b := tx.Bucket([]byte(stream))
	if b == nil {
		return nil, fmt.Errorf("no queue stream %q", stream)
	}
	return b, nil
}
