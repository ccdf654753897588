package metadb

import (
	"bytes"
	"sync"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// readTxs keeps read transactions open between the manifest reads that
// miss the cache, each with a cursor on the meta bucket, so that such a
// read is one seek: at a million manifests, beginning and ending a bolt
// transaction, finding the bucket and allocating a cursor for every read
// (11 allocations) cost as much CPU as the seek and the decode together.
//
// Invariant: a transaction kept idle here is never older than the last
// committed write. Every write and every swap of the file pauses the pool
// first (closing the idle transactions and keeping none while it runs)
// and resumes it after; a transaction goes back to the pool only if no
// pause began since before it was begun. So a read that saw the index
// after a commit (the index is updated once the commit returned) reads
// the disk as of that commit or later, as a fresh transaction would.
//
// Closing the idle transactions before a write also keeps them from
// holding bolt's mmap lock (it remaps when the file outgrows its mapping)
// and the pages freed since (which bolt reuses once no reader can see
// them) through the write.
//
// Beginning and closing transactions happens outside mu: a Begin waits
// while bolt remaps, and a remap waits for every open transaction, which
// may be one on its way back to the pool.
type readTxs struct {
	mu   sync.Mutex
	idle []*readTx
	// gen counts the pauses begun; paused counts those not resumed.
	gen    uint64
	paused int
}

// maxIdleTxs bounds the transactions kept idle: about as many as reads
// run at once on the cores a registry has.
const maxIdleTxs = 16

// A readTx is a read transaction with a cursor on the meta bucket, for
// one goroutine at a time.
type readTx struct {
	tx   *bolt.Tx
	meta *bolt.Cursor
	gen  uint64 // readTxs.gen when it was begun; ^0: not to be kept
}

// take returns an idle transaction, or nil and the generation a new one
// begun now belongs to.
func (p *readTxs) take() (*readTx, uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused > 0 {
		return nil, ^uint64(0)
	}
	if n := len(p.idle); n > 0 {
		t := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		return t, t.gen
	}
	return nil, p.gen
}

// put keeps t for the next read, or closes it when a pause began since it
// was begun or enough are idle.
func (p *readTxs) put(t *readTx) {
	p.mu.Lock()
	keep := p.paused == 0 && t.gen == p.gen && len(p.idle) < maxIdleTxs
	if keep {
		p.idle = append(p.idle, t)
	}
	p.mu.Unlock()
	if !keep {
		_ = t.tx.Rollback()
	}
}

// pause closes the idle transactions and keeps none until resume.
func (p *readTxs) pause() {
	p.mu.Lock()
	p.gen++
	p.paused++
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, t := range idle {
		_ = t.tx.Rollback()
	}
}

func (p *readTxs) resume() {
	p.mu.Lock()
	p.paused--
	p.mu.Unlock()
}

// readMeta calls fn with a cursor on the meta bucket of a read
// transaction of the current file, which fn must not keep; the values it
// finds are valid only until fn returns.
func (h *handle) readMeta(fn func(meta *bolt.Cursor) error) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.db == nil {
		return berrors.ErrDatabaseNotOpen
	}
	t, gen := h.reads.take()
	if t == nil {
		tx, err := h.db.Begin(false)
		if err != nil {
			return err
		}
		t = &readTx{tx: tx, meta: tx.Bucket(bucketMeta).Cursor(), gen: gen}
	}
	err := fn(t.meta)
	h.reads.put(t)
	return err
}

// seek returns the value of key k in the bucket of c, nil when it has
// none.
func seek(c *bolt.Cursor, k []byte) []byte {
	found, v := c.Seek(k)
	if !bytes.Equal(found, k) {
		return nil
	}
	return v
}
