package metadb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bbolt reuses the pages a commit frees but never gives them back to the
// file system: after churn (a trimmed log, collected manifest records) the
// file keeps its largest size. A sparse database is copied into a new file
// (bbolt.Compact), synced and renamed over the old one: at Open
// (compactSparse) and while the store runs (CompactIfSparse,
// compactonline.go), so the file returns to its live size.

const (
	// compactMin is the fewest bytes a compaction must win back: below
	// it, one is not worth a pause of the writes, however small the file.
	compactMin = 64 << 10
	// compactFree is the share of the file, in percent, that a compaction
	// must win back. A compaction copies the live pages, so that the cost
	// of compacting is a bounded share of the churn that made it due.
	compactFree = 25
	// allocStep is how much bbolt grows a file past 16 MiB by (its
	// AllocSize); below, the file is its memory map, a power of two.
	allocStep = 16 << 20
)

// compactedSize is about the size of a compacted copy of live bytes of
// pages: bbolt sizes a file as noted at allocStep.
func compactedSize(live int64) int64 {
	if live > allocStep/2 {
		return live + allocStep
	}
	size := int64(32 << 10)
	for size < live {
		size *= 2
	}
	return size
}

// compactSparse compacts the database at path, not open, when it is
// sparse (see sparse). A crash midway leaves the old file in place and a
// temporary one that the next call removes.
func compactSparse(path string) error {
	tmp := path + ".compact"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("compact metadata: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Size() < compactMin {
		return nil // a new database, or one too small to win anything
	}
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("open metadata %s: %w", path, err)
	}
	var due bool
	if err := src.View(func(tx *bolt.Tx) error { _, _, due, err = sparse(path, tx); return err }); err != nil || !due {
		return errors.Join(err, src.Close())
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoSync: true})
	if err != nil {
		return errors.Join(fmt.Errorf("compact metadata: %w", err), src.Close())
	}
	err = bolt.Compact(dst, src, 64<<20)
	if err == nil {
		err = dst.Sync()
	}
	if err = errors.Join(err, dst.Close(), src.Close()); err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("compact metadata: %w", err)
	}
	return syncDir(path)
}

// syncDir syncs the directory of path, after a synced copy was renamed
// to path: after a crash path is then the copy, whole.
func syncDir(path string) error {
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	return errors.Join(dir.Sync(), dir.Close())
}
