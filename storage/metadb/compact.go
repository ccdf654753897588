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
// file keeps its largest size. At Open the store copies a sparse database
// into a new file (bbolt.Compact), syncs it and renames it over the old
// one, so the file returns to its live size on restart.

const (
	// compactMin is the smallest file worth compacting.
	compactMin = 4 << 20
	// compactFree is the share of free pages, in percent, past which a
	// file is compacted.
	compactFree = 25
)

// compactSparse compacts the database at path when at least compactFree
// percent of a file of compactMin bytes or more is free pages. A crash
// midway leaves the old file in place and a temporary one Open removes.
func compactSparse(path string) error {
	tmp := path + ".compact"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("compact metadata: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Size() < compactMin {
		return nil // a new database, or one too small to bother
	}
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("open metadata %s: %w", path, err)
	}
	free := int64(src.Stats().FreePageN) * int64(src.Info().PageSize)
	if free*100 < fi.Size()*compactFree {
		return src.Close()
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoSync: true})
	if err != nil {
		return errors.Join(fmt.Errorf("compact metadata: %w", err), src.Close())
	}
	err = bolt.Compact(dst, src, 64<<20)
	if err == nil {
		err = dst.Sync()
	}
	if err = errors.Join(err, dst.Close(), src.Close()); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("compact metadata: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("compact metadata: %w", err)
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("compact metadata: %w", err)
	}
	return errors.Join(dir.Sync(), dir.Close())
}
