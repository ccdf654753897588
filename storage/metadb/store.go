// Package metadb is the metadata store over an embedded bbolt database.
//
// Every write is one durable, atomic bbolt transaction, so the store
// survives kill -9 at any instant: a write is wholly there after restart or
// wholly absent. Disk kept preallocated for the database (reserve.go) lets
// deletes commit on a full disk. Reads are served from an in-memory copy loaded at Open and
// updated after each commit: an index of names, tags, links and what each
// manifest record says (size, media type, subject); manifest bytes are
// read from disk through a bounded cache (cache.go). Referrers and the
// repositories linking a blob come from the index, not from scans.
//
// The store is built to be replicated: each key holds its latest op with a
// hybrid-logical-clock stamp (last writer wins, deletes are tombstones),
// and every write is a numbered batch in the log of the member that took it.
// Members exchange batches (Apply, Vector, Since over package metalog's
// records) and converge to the same
// state whatever order they apply them in.
package metadb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/diskspace"
	"github.com/atollhq/atoll/storage/metalog"
)

// Config is what an operator tunes of the metadata store (the yaml
// section metadata).
type Config struct {
	// CacheSize is how many bytes of manifests stay in memory; a miss
	// reads the manifest from disk (metadata.cachesize, a size such as
	// 256MiB that the binary parses with diskspace.ParseSize). Default
	// DefaultCacheSize (64 MiB); negative: none.
	CacheSize int64 `yaml:"cachesize"`
}

func (c *Config) applyDefaults() {
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
}

// Options configure a Store.
type Options struct {
	// Origin names this member in the metadata log. Default "local".
	Origin string
	// Reserve is how much disk stays preallocated for the database, so
	// deletes commit on a full disk (see reserve). Default DefaultReserve;
	// negative: none.
	Reserve int64
	Config
	// NoSync skips fsync on commit: a crash may lose or corrupt the
	// database. For benchmarks and tests only.
	NoSync bool
}

// Store implements storage.Metadata and the replicated log (Apply,
// Vector, Since). It is composed of parts split by capability (parts.go),
// each a view of the one core they share: promoted, their methods are the
// Store's.
type Store struct {
	*core
	*replicaLog
	*manifests
	*links
	*pins
	*uploadRecords
	*usageIndex
	*snapshots
	*collector
	*compacter
	*stamps
	*recordChecks
}

// core is the state every part shares, held once: the database, the
// clock, the in-memory index and the vector, under the one pair of locks.
// Parts change the replicated state through write and commit, or under
// wmu as those do (snapshot.go, install.go, compactonline.go); uploads
// write their local buckets directly (uploads.go).
type core struct {
	db      *handle // replaced by online compaction (compactonline.go)
	origin  string
	clock   clock
	reserve *reserve // nil: none
	cache   *cache
	bad     badSet // records found bad, not yet mended (recordcheck.go)

	wmu sync.Mutex   // serialises commits so memory changes in commit order
	mu  sync.RWMutex // guards st and vec
	st  *state
	vec metalog.Vector
}

var (
	_ storage.Metadata  = (*Store)(nil)
	_ storage.Inventory = (*Store)(nil)
)

// ErrCorrupt says the database file could not be read: bbolt found a page
// that is not what the tree says it is (a bad sector, a file cut short, a
// copy taken while it was written).
var ErrCorrupt = errors.New("the metadata database is corrupt")

// Open opens or creates the database at path and loads it into memory.
//
// bbolt panics on a page that is not what its parent says it is, and a
// read past the end of a file cut short faults in the mapping; Open reads
// every page of the key space as it loads it, so a corrupt file fails
// here with ErrCorrupt, before the member serves, rather than crashing it
// later. A failure there leaves the file open (and locked) in this
// process, which is expected to exit.
func Open(path string, opts Options) (s *Store, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true)) // a fault in the mapping panics
	defer func() {
		if p := recover(); p != nil {
			if _, fault := p.(interface{ Addr() uintptr }); fault {
				p = fmt.Sprintf("a read faulted in its mapping (is the file cut short?): %v", p)
			}
			s, err = nil, fmt.Errorf("%s: %w: reading it failed with: %v", path, ErrCorrupt, p)
		}
	}()
	return open(path, opts)
}

func open(path string, opts Options) (*Store, error) {
	if opts.Origin == "" {
		opts.Origin = "local"
	}
	if opts.Reserve == 0 {
		opts.Reserve = DefaultReserve
	}
	opts.applyDefaults()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("metadata directory: %w", err)
	}
	if err := compactSparse(path); err != nil {
		return nil, err
	}
	// The hashmap free list finds runs of free pages for the log's large
	// values in constant time; the array one scans (bbolt's default).
	db, err := openHandle(path, bolt.Options{Timeout: 5 * time.Second, NoSync: opts.NoSync, FreelistType: bolt.FreelistMapType, MmapFlags: mmapFlags})
	if err != nil {
		return nil, err
	}
	s := newStore(&core{db: db, origin: opts.Origin, st: newState(), vec: metalog.Vector{}, cache: newCache(opts.CacheSize)})
	if s.reserve, err = openReserve(path, opts.Reserve); err != nil {
		_ = db.Close()
		return nil, err
	}
	err = s.admit(false)
	if err == nil {
		err = s.load()
	}
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("load metadata %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return errors.Join(s.db.Close(), s.reserve.close()) }

func (s *core) load() error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketLog, bucketVector, bucketUploads, bucketFinished} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		err := tx.Bucket(bucketVector).ForEach(func(k, v []byte) error {
			s.vec[string(k)] = binary.BigEndian.Uint64(v)
			return nil
		})
		if err != nil {
			return err
		}
		var latest uint64
		defer func() { s.clock.observe(latest) }()
		err = tx.Bucket(bucketMeta).ForEach(func(k, v []byte) error {
			stamp, deleted, value, err := peekEntry(v)
			if err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
			latest = max(latest, stamp)
			if deleted {
				s.st.unlinked(k, stamp)
				return nil
			}
			return s.st.apply(metalog.Op{Key: string(k), Value: value, Stamp: stamp})
		})
		if err != nil {
			return err
		}
		// Walk the other buckets' pages too, so that a corrupt one fails
		// the open (Open) rather than a later read.
		for _, name := range [][]byte{bucketLog, bucketUploads, bucketFinished, bucketInstall} {
			if b := tx.Bucket(name); b != nil {
				c := b.Cursor()
				for k, _ := c.First(); k != nil; k, _ = c.Next() {
				}
			}
		}
		return nil
	})
	s.st.settle()
	return err
}

// write commits the ops that build derives from the current state as this
// member's next batch. extra runs in the same transaction, for local-only
// buckets. Sending the batch to other members is not the store's business:
// node/metasync decorates the store for that.
func (s *core) write(ctx context.Context, build func(st *state) ([]metalog.Op, error), extra func(tx *bolt.Tx) error) error {
	return s.writeReserved(ctx, false, build, extra)
}

// writeReserved is write; reserved lets a write that adds metadata use the
// whole reserve, for one that finishes what the disk already holds.
func (s *core) writeReserved(ctx context.Context, reserved bool, build func(st *state) ([]metalog.Op, error), extra func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.wmu.Lock()
	s.mu.RLock()
	ops, err := build(s.st)
	seq := s.vec[s.origin] + 1
	s.mu.RUnlock()
	if err != nil || len(ops) == 0 && extra == nil {
		s.wmu.Unlock()
		return err
	}
	stamp := s.clock.now()
	for i := range ops {
		ops[i].Stamp, ops[i].Origin = stamp, s.origin
	}
	b := metalog.Batch{Origin: s.origin, Seq: seq, Ops: ops}
	if err := s.admit(!reserved && adding(b)); err != nil {
		s.wmu.Unlock()
		return err
	}
	if len(ops) == 0 {
		err = s.commit(nil, extra)
	} else {
		err = s.commit([]metalog.Batch{b}, extra)
	}
	s.wmu.Unlock()
	return err
}

// commit stores each batch that continues its origin's log, keeping every
// op that wins over the stored entry, and then updates memory. The caller
// holds wmu.
func (s *core) commit(batches []metalog.Batch, extra func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	vec := s.vec.Clone()
	s.mu.RUnlock()
	var won []metalog.Op
	err := s.db.Update(func(tx *bolt.Tx) error {
		won = won[:0]
		meta, log, vb := tx.Bucket(bucketMeta), tx.Bucket(bucketLog), tx.Bucket(bucketVector)
		log.FillPercent = 1 // appended in key order: full pages, not half
		for _, b := range batches {
			if b.Seq != vec[b.Origin]+1 {
				continue // applied already, or past a gap anti-entropy will fill
			}
			inMeta := make([]bool, len(b.Ops))
			for i, op := range b.Ops {
				ok, err := merge(meta, op)
				if err != nil {
					return err
				}
				if ok {
					won = append(won, op)
					// A record's bytes stay in its entry only (logrec.go).
					inMeta[i] = !op.Deleted && isRecordKey(op.Key)
				}
			}
			if err := log.Put(logKey(b.Origin, b.Seq), encodeBatch(b, inMeta)); err != nil {
				return err
			}
			vec[b.Origin] = b.Seq
			if err := vb.Put([]byte(b.Origin), binary.BigEndian.AppendUint64(nil, b.Seq)); err != nil {
				return err
			}
		}
		if extra != nil {
			return extra(tx)
		}
		return nil
	})
	if err != nil {
		return diskspace.Classify(fmt.Errorf("metadata write: %w", err))
	}
	s.markRecords(won)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vec = vec
	return s.applyCommitted(won)
}

// applyCommitted brings the in-memory state (clock, index, manifest cache)
// up to ops, just committed to disk. The caller holds s.mu.
func (s *core) applyCommitted(ops []metalog.Op) error {
	defer s.st.settle()
	for _, op := range ops {
		s.clock.observe(op.Stamp)
		if k, err := parseKeyString(op.Key); err == nil && k.manifest != "" {
			dk, _ := keyOf(k.manifest)
			s.cache.forget(dk)
		}
		if err := s.st.apply(op); err != nil {
			return err // keys are checked before commit; this is corruption
		}
	}
	return nil
}

// Apply applies batches of other members durably. A batch already
// applied is skipped; a batch past a gap in its origin's log is skipped
// too, to be fetched again by anti-entropy.
func (s *replicaLog) Apply(ctx context.Context, batches []metalog.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, b := range batches {
		for _, op := range b.Ops {
			if _, err := parseKeyString(op.Key); err != nil {
				return fmt.Errorf("batch %s/%d: %w", b.Origin, b.Seq, err)
			}
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.admit(adding(batches...)); err != nil {
		return err
	}
	return s.commit(batches, nil)
}

// Vector returns what this store has applied.
func (s *replicaLog) Vector() metalog.Vector {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.vec.Clone()
}

// Since returns up to limit batches of origin with Seq > seq, in order.
func (s *replicaLog) Since(origin string, seq uint64, limit int) ([]metalog.Batch, error) {
	var out []metalog.Batch
	prefix := logKey(origin, 0)[:len(origin)+1]
	err := s.db.View(func(tx *bolt.Tx) error {
		meta, c := tx.Bucket(bucketMeta), tx.Bucket(bucketLog).Cursor()
		for k, v := c.Seek(logKey(origin, seq+1)); k != nil && len(out) < limit; k, v = c.Next() {
			if len(k) != len(prefix)+8 || string(k[:len(prefix)]) != string(prefix) {
				break
			}
			b, err := decodeBatch(meta, v)
			if err != nil {
				return fmt.Errorf("log %s: %w", origin, err)
			}
			out = append(out, b)
		}
		return nil
	})
	return out, err
}
