package notify

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DBName is the queue file New opens in its directory.
const DBName = "notifications.db"

// queue is the durable event queue, one bbolt file for all endpoints:
//
//	bucket <endpoint name>
//	    key   8-byte big-endian sequence (the bucket's NextSequence)
//	    value the event as JSON, exactly as sent
//
// Keys only grow, across restarts too, so a cursor from First walks an
// endpoint's events in the order they were queued. Methods may be called
// concurrently.
type queue struct {
	db *bolt.DB
}

// batchDelay is how long an append waits for concurrent appends to share
// its commit (one fsync for many events under load).
const batchDelay = time.Millisecond

func openQueue(dir string) (*queue, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("notifications directory: %w", err)
	}
	path := filepath.Join(dir, DBName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open notifications queue %s: %w", path, err)
	}
	db.MaxBatchDelay = batchDelay
	return &queue{db: db}, nil
}

func (q *queue) close() error { return q.db.Close() }

// lengths creates the buckets of names and returns how many events every
// bucket in the file holds, including those of endpoints no longer named.
func (q *queue) lengths(names []string) (map[string]int, error) {
	n := map[string]int{}
	err := q.db.Update(func(tx *bolt.Tx) error {
		for _, name := range names {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("bucket %q: %w", name, err)
			}
		}
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			n[string(name)] = b.Stats().KeyN
			return nil
		})
	})
	return n, err
}

// append queues event for each endpoint in names, durably, in one commit
// shared with concurrent appends.
func (q *queue) append(names []string, event []byte) error {
	return q.db.Batch(func(tx *bolt.Tx) error {
		for _, name := range names {
			b := tx.Bucket([]byte(name))
			if b == nil {
				return fmt.Errorf("no queue for endpoint %q", name)
			}
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), event); err != nil {
				return err
			}
		}
		return nil
	})
}

// peek returns up to limit of the oldest events queued for name, with their
// keys for remove.
func (q *queue) peek(name string, limit int) (keys, events [][]byte, err error) {
	err = q.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(name))
		if b == nil {
			return fmt.Errorf("no queue for endpoint %q", name)
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(keys) < limit; k, v = c.Next() {
			// bbolt's slices live only as long as the transaction.
			keys = append(keys, append([]byte(nil), k...))
			events = append(events, append([]byte(nil), v...))
		}
		return nil
	})
	return keys, events, err
}

// remove deletes the events with keys from name's queue.
func (q *queue) remove(name string, keys [][]byte) error {
	return q.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(name))
		if b == nil {
			return fmt.Errorf("no queue for endpoint %q", name)
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
