package metadb

import (
	"errors"
	"fmt"
	"os"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/diskspace"
	"github.com/atollhq/atoll/storage/metalog"
)

// DefaultReserve is the disk space kept for metadata commits on a full
// disk (Options.Reserve).
const DefaultReserve = 8 << 20

// A reserve keeps deletes committing on a full disk.
//
// bbolt writes a commit to pages past the end of its data whenever its
// free list has none to reuse; on a full disk those writes fail, and then
// not even a delete, the only way to free space through the API, could
// commit. So the store keeps disk blocks preallocated past the end of the
// database's data (fallocate with FALLOC_FL_KEEP_SIZE: the file's size and
// content stay as they are, and the blocks stay when bbolt extends the
// file). Writes there cannot fail for lack of space.
//
// Before each commit the reserve is topped up. On a full disk the top-up
// fails and commits eat into the reserve: a write that adds metadata is
// then refused with storage.ErrNoSpace once half of it is gone, so the
// other half is always there for writes that only delete (tombstones,
// finished upload sessions). The preallocated blocks outlive a restart.
type reserve struct {
	size int64
	mu   sync.Mutex
	f    *os.File // the database file, opened again for fallocate
	end  int64    // the file's blocks are preallocated up to here
	off  bool     // the filesystem cannot preallocate: no reserve
}

// openReserve opens the reserve of size bytes past the data of the
// database at path; size <= 0 keeps none and returns nil.
func openReserve(path string, size int64) (*reserve, error) {
	if size <= 0 {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("metadata reserve: %w", err)
	}
	// Blocks preallocated before a restart are still there; the file's
	// data below its end is dense, so what it holds past that is reserve.
	end, _ := diskspace.Allocated(f)
	return &reserve{size: size, f: f, end: end}, nil
}

func (r *reserve) close() error {
	if r == nil {
		return nil
	}
	return r.f.Close()
}

// admit tops the reserve up past dataEnd, the end of the database's data,
// and says whether a write may commit: one that only deletes always may,
// one that adds while at least half of the reserve is left.
func (r *reserve) admit(dataEnd int64, adds bool) error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.off {
		return nil
	}
	// Top up in steps of a quarter, not on every page the data grows by.
	if r.end-dataEnd < r.size*3/4 {
		switch err := diskspace.Preallocate(r.f, r.end, dataEnd+r.size-r.end); {
		case err == nil:
			r.end = dataEnd + r.size
		case errors.Is(err, errors.ErrUnsupported):
			r.off = true
			return nil
		}
		// Otherwise the disk is full: spend what is left.
	}
	if adds && r.end-dataEnd < r.size/2 {
		return fmt.Errorf("metadata: reserve for deletes reached: %w", storage.ErrNoSpace)
	}
	return nil
}

// admit is the store's reserve check for a write that adds metadata or
// only deletes it.
func (s *core) admit(adds bool) error {
	if s.reserve == nil {
		return nil
	}
	var end int64
	if err := s.db.View(func(tx *bolt.Tx) error { end = tx.Size(); return nil }); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	return s.reserve.admit(end, adds)
}

// adding reports whether any op sets a key rather than deleting it.
func adding(batches ...metalog.Batch) bool {
	for _, b := range batches {
		for _, op := range b.Ops {
			if !op.Deleted {
				return true
			}
		}
	}
	return false
}
