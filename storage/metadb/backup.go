package metadb

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a copy of the database file to w as of one commit, while
// the store goes on serving reads and writes: the copy is one read
// transaction's view, which bbolt writes out whole (tx.WriteTo). Before
// the first byte it calls size with the copy's length. A compaction waits
// for the copy (it would swap the file under it); a write that must grow
// the file's mapping waits for it too, as it waits for any read.
//
// The copy opens as a metadata.db: restored in place of a member's file,
// with the member stopped, it holds what the member had applied at that
// commit (Verify checks one).
func (s *compacter) Backup(w io.Writer, size func(int64)) (int64, error) {
	h := s.db
	h.compacting.Lock()
	defer h.compacting.Unlock()
	var n int64
	err := h.View(func(tx *bolt.Tx) error {
		size(tx.Size())
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// Verify checks the database file at path, a backup or a stopped
// member's metadata.db, page by page (bbolt's consistency check: every
// page reachable once, none both free and in use); a file that fails
// fails with ErrCorrupt.
func Verify(path string) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // a fault in the mapping panics
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: %w: checking it failed with: %v", path, ErrCorrupt, p)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, MmapFlags: mmapFlags, Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("open %s (is a registry running on it?): %w", path, err)
	}
	defer db.Close()
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	var problems []error
	err = db.View(func(tx *bolt.Tx) error {
		if fi.Size() < tx.Size() { // its pages past the end would fault in the check
			return fmt.Errorf("%w: cut short: %d bytes of %d", ErrCorrupt, fi.Size(), tx.Size())
		}
		for _, name := range [][]byte{bucketMeta, bucketLog, bucketVector} {
			if tx.Bucket(name) == nil {
				problems = append(problems, fmt.Errorf("no %s bucket", name))
			}
		}
		for e := range tx.Check() {
			problems = append(problems, e)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %w: %w", path, ErrCorrupt, errors.Join(problems...))
	}
	return nil
}
