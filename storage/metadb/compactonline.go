package metadb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/atollhq/atoll/storage/diskspace"
)

// Online compaction. The store's bolt database sits behind a handle that
// every transaction goes through, so that CompactIfSparse can replace it
// by a compacted copy while the store runs:
//
//   - writes go on while a snapshot is copied (bolt.Compact), and pause
//     for the swap: the store's write lock and the handle's writes lock
//     are held, and if a write committed since the snapshot began, the
//     file is copied again first, so nothing that committed to the old
//     file is missing from the new one (no write is lost);
//   - reads go on: the in-memory index and the manifest cache need no
//     disk, and a read transaction runs on the old file until the swap,
//     which waits for the ones in flight and makes every later one read
//     the new file;
//   - a crash at any point leaves the old file or the new one, whole: the
//     copy is written to path.compact, synced, opened, and only then
//     renamed over path and the directory synced; Open removes a
//     path.compact left by a crash (compactSparse).

// handle is the store's bolt database, replaced by CompactIfSparse. Its
// View, Update and Close are bolt's, serialised against the swap.
type handle struct {
	path string
	opts bolt.Options

	compacting sync.Mutex    // one compaction at a time
	writes     sync.RWMutex  // read-held by each Update; write-held while compacting: writes pause
	gen        atomic.Uint64 // Updates so far, committed or not
	mu         sync.RWMutex  // read-held by each transaction; write-held to swap db
	db         *bolt.DB      // nil once closed
	reads      readTxs       // kept open for manifest reads (readtx.go); paused by writes, the swap and Close

	pausedMax int64  // pausedCopyMax; tests lower it
	copied    func() // tests: runs after each snapshot copy, before writes pause
}

// openHandle opens the database at path.
func openHandle(path string, opts bolt.Options) (*handle, error) {
	db, err := bolt.Open(path, 0o600, &opts)
	if err != nil {
		return nil, fmt.Errorf("open metadata %s: %w", path, err)
	}
	return &handle{path: path, opts: opts, db: db, pausedMax: pausedCopyMax}, nil
}

// View runs a read transaction on the current file.
func (h *handle) View(fn func(*bolt.Tx) error) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.db == nil {
		return berrors.ErrDatabaseNotOpen
	}
	return h.db.View(fn)
}

// Update runs a write transaction on the current file; it waits while a
// compaction copies the file.
func (h *handle) Update(fn func(*bolt.Tx) error) error {
	h.writes.RLock()
	defer h.writes.RUnlock()
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.db == nil {
		return berrors.ErrDatabaseNotOpen
	}
	defer h.gen.Add(1)
	h.reads.pause()
	defer h.reads.resume()
	return h.db.Update(fn)
}

// Close closes the database, after a compaction in progress.
func (h *handle) Close() error {
	h.writes.Lock()
	defer h.writes.Unlock()
	h.reads.pause()
	defer h.reads.resume()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.db == nil {
		return nil
	}
	err := h.db.Close()
	h.db = nil
	return err
}

// Compaction reports what CompactIfSparse did.
type Compaction struct {
	// Done says the file was sparse and was compacted.
	Done bool
	// Before and After are the file's sizes in bytes; Live is the bytes of
	// pages in use before.
	Before, After, Live int64
	// Paused is how long writes waited: the swap, and the copy if Again.
	Paused time.Duration
	// Again says writes overtook each snapshot copied, so the file was
	// copied again with writes paused.
	Again bool
	// Deferred says writes overtook each snapshot copied and the file is
	// too large (pausedCopyMax) to copy with writes paused: it was left as
	// it was.
	Deferred bool
}

// CompactIfSparse compacts the database file online when that wins back
// at least compactMin bytes and compactFree percent of it (see sparse and
// the top of this file).
func (s *compacter) CompactIfSparse(ctx context.Context) (Compaction, error) {
	return s.compactOnline(ctx, false)
}

const (
	// snapshotTries is how many snapshots compactOnline copies, writes
	// going on, before it copies with writes paused.
	snapshotTries = 2
	// pausedCopyMax is the most live bytes copied with writes paused
	// (about 0.3 s a 20 MiB on this project's test machine, 19 s 2 GiB):
	// a larger file whose snapshots writes kept overtaking is left for
	// the next round, or for Open.
	pausedCopyMax = 256 << 20
)

// compactOnline compacts the file if it is sparse, or in any case when
// force is set. It first copies a snapshot while writes go on, and keeps
// that copy if no write committed since the snapshot began: writes then
// pause only for the swap. Otherwise it tries again, up to snapshotTries
// copies, and then copies with writes paused, or gives up if that would
// pause them long (pausedCopyMax).
func (s *compacter) compactOnline(ctx context.Context, force bool) (c Compaction, err error) {
	h := s.db
	if !h.compacting.TryLock() {
		return Compaction{}, nil // one is running: it does the work
	}
	defer h.compacting.Unlock()
	if err := ctx.Err(); err != nil {
		return Compaction{}, err
	}
	var sparseNow bool
	err = h.View(func(tx *bolt.Tx) error {
		var err error
		c.Before, c.Live, sparseNow, err = sparse(h.path, tx)
		return err
	})
	if err != nil || !sparseNow && !force {
		return c, err
	}
	tmp := h.path + ".compact"
	var dst *bolt.DB
	var gen uint64
	for try := 1; ; try++ {
		gen = h.gen.Load()
		h.mu.RLock()
		if h.db == nil {
			err = berrors.ErrDatabaseNotOpen
		} else {
			dst, err = copyDB(h.db, tmp, h.opts)
		}
		h.mu.RUnlock()
		if err != nil {
			return c, fmt.Errorf("compact metadata: %w", err)
		}
		if h.copied != nil {
			h.copied()
		}
		s.wmu.Lock()
		h.writes.Lock()
		if h.gen.Load() == gen || try == snapshotTries {
			break // with writes paused
		}
		h.writes.Unlock()
		s.wmu.Unlock()
		_ = dst.Close() // and the next copyDB replaces it
	}
	start := time.Now()
	resume := func() {
		c.Paused = time.Since(start)
		h.writes.Unlock()
		s.wmu.Unlock()
	}
	abandon := func() {
		resume()
		if dst != nil {
			_ = dst.Close()
		}
		_ = os.Remove(tmp)
	}
	if h.db == nil { // closed during the copy
		abandon()
		return c, fmt.Errorf("compact metadata: %w", berrors.ErrDatabaseNotOpen)
	}
	if h.gen.Load() != gen {
		if c.Live > h.pausedMax {
			abandon() // the next round tries again; Open compacts it in any case
			c.Deferred = true
			return c, nil
		}
		c.Again = true
		if err = dst.Close(); err == nil {
			dst, err = copyDB(h.db, tmp, h.opts)
		}
	}
	if err == nil {
		err = os.Rename(tmp, h.path)
	}
	if err != nil {
		abandon()
		return c, fmt.Errorf("compact metadata: %w", err)
	}
	// Renamed: path is the copy, which must take the writes from now on,
	// even if syncing the directory fails; and only once the rename is
	// durable, or a crash could lose them with the copy.
	err = syncDir(h.path)
	dst.NoSync = h.opts.NoSync
	h.reads.pause()
	h.mu.Lock()
	old := h.db
	h.db = dst
	h.mu.Unlock()
	h.reads.resume()
	c.Done = true
	resume()
	// No transaction can reach old now: the swap waited for those in
	// flight. Closing it (and the reserve's descriptor) frees its blocks,
	// which can take a while: writes go on meanwhile.
	err = errors.Join(err, old.Close())
	if s.reserve != nil {
		err = errors.Join(err, s.reserve.reopen(h.path))
	}
	if fi, serr := os.Stat(h.path); serr == nil {
		c.After = fi.Size()
	}
	if err != nil {
		return c, fmt.Errorf("compact metadata: after the swap: %w", err)
	}
	return c, nil
}

// copyDB copies src, compacted, into a new database at tmp, opened with
// opts, and syncs it. The copy is of one read transaction of src.
func copyDB(src *bolt.DB, tmp string, opts bolt.Options) (*bolt.DB, error) {
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	opts.NoSync = true // synced once whole
	dst, err := bolt.Open(tmp, 0o600, &opts)
	if err != nil {
		return nil, err
	}
	stx, err := src.Begin(false)
	if err == nil {
		err = copyTx(dst, stx, 64<<20)
		_ = stx.Rollback()
	}
	if err == nil {
		err = dst.Sync()
	}
	if err != nil {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return nil, err
	}
	return dst, nil
}

// copyTx copies every bucket of src into dst, pages filled, in
// transactions of about txMax bytes. It is bolt.Compact but for one
// thing: every transaction of dst commits while src is open. dst keeps
// the values it is given by reference until it commits, and they live in
// src's memory map, which a write to src may replace once src's last
// read transaction is done; bolt.Compact commits its last transaction
// after its read of src, which is safe only when nothing writes to src.
func copyTx(dst *bolt.DB, src *bolt.Tx, txMax int64) error {
	tx, err := dst.Begin(true)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var size int64
	put := func(path [][]byte, k, v []byte, seq uint64) error {
		if sz := int64(len(k) + len(v)); size+sz > txMax {
			if err := tx.Commit(); err != nil {
				return err
			}
			if tx, err = dst.Begin(true); err != nil {
				return err
			}
			size = 0
		}
		size += int64(len(k) + len(v))
		if len(path) == 0 {
			b, err := tx.CreateBucket(k)
			if err != nil {
				return err
			}
			return b.SetSequence(seq)
		}
		b := tx.Bucket(path[0])
		for _, name := range path[1:] {
			b = b.Bucket(name)
		}
		b.FillPercent = 1
		if v != nil {
			return b.Put(k, v)
		}
		nb, err := b.CreateBucket(k)
		if err != nil {
			return err
		}
		return nb.SetSequence(seq)
	}
	var walk func(path [][]byte, b *bolt.Bucket) error
	walk = func(path [][]byte, b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v != nil {
				return put(path, k, v, 0)
			}
			nested := b.Bucket(k)
			if err := put(path, k, nil, nested.Sequence()); err != nil {
				return err
			}
			return walk(append(path[:len(path):len(path)], k), nested)
		})
	}
	err = src.ForEach(func(name []byte, b *bolt.Bucket) error {
		if err := put(nil, name, nil, b.Sequence()); err != nil {
			return err
		}
		return walk([][]byte{name}, b)
	})
	if err != nil {
		return err
	}
	return tx.Commit()
}

// sparse returns the size of the file at path and the bytes of its live
// pages, as tx sees them, and whether the file is worth compacting: a
// compacted copy (compactedSize) would be at least compactMin bytes and
// compactFree percent of the file smaller.
func sparse(path string, tx *bolt.Tx) (size, live int64, ok bool, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, false, err
	}
	st := tx.DB().Stats()
	free := int64(st.FreePageN+st.PendingPageN) * int64(tx.DB().Info().PageSize)
	size, live = fi.Size(), max(0, tx.Size()-free)
	won := size - compactedSize(live)
	return size, live, won >= compactMin && won*100 >= size*compactFree, nil
}

// reopen points the reserve at the file now at path (a compacted copy
// renamed over the one it had open): the old file's blocks go with its
// last descriptor, and the next admit preallocates the new one's.
func (r *reserve) reopen(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("metadata reserve: %w", err)
	}
	end, _ := diskspace.Allocated(f) // as openReserve: the copy is dense
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.f
	r.f, r.end = f, end
	return old.Close()
}
