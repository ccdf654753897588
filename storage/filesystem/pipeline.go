package filesystem

import (
	"hash"
	"io"
	"sync"
)

// An upload's bytes land once in memory, in a chunk: copied there by
// Write, or read there straight from the request body by ReadFrom. A full
// chunk is hashed on one goroutine while it is written to the upload file
// on another, and is reused once both are done. Chunks start at file
// offsets that are multiples of align and are written whole (the last
// one padded, then the file truncated), so the file can be opened with
// O_DIRECT: the bytes go from the chunk to the disk without the page
// cache's copy, which cost a push more CPU than SHA-256 did (perf over a
// 1 GiB push: copy_folio_from_iter_atomic 23 % of the machine's samples,
// SHA-256 5.5 %). chunks.go says when an upload goes through the page
// cache anyway.
const (
	// align is the alignment direct I/O asks of file offsets, lengths
	// and memory (4096 covers disks with 512- and 4096-byte sectors).
	align = 4096
	// chunkSize is a chunk's length: large enough that one write and one
	// hash per chunk cost little beside the bytes, small enough that an
	// upload holds little memory.
	chunkSize = 2 << 20
	// maxChunks bounds an upload's chunks: one filling, the others being
	// hashed and written.
	maxChunks = 4
)

type chunk struct {
	buf []byte // chunkSize bytes, aligned
	off int64  // file offset of buf[0], a multiple of align
	n   int    // bytes of buf that hold the upload's data
	// hashed is how many of buf[:n] the hash already has: the head of a
	// resumed upload's last block, or bytes hashed and stored by a flush.
	hashed int
	// keep says the chunk goes back to the writer, not to the free list,
	// once hashed and stored (a flush of a chunk not yet full).
	keep    bool
	pending int // stages (hash, store) not done yet; under pipeline.mu
}

// storeFunc writes b at file offset off; len(b) and off are multiples of
// align.
type storeFunc func(b []byte, off int64) error

// pipeline feeds an upload's chunks to its hash and to its file. Its
// methods are called by one goroutine at a time; the hash and the store
// run on goroutines of their own. A failed store is sticky: it is
// returned by every later write, flush or readFrom.
type pipeline struct {
	h     hash.Hash
	store storeFunc
	pool  *chunkPool // chunk buffers, shared by a Store's uploads
	// direct says the chunks are for direct I/O; otherwise they are small
	// and the file must be written through the page cache.
	direct bool

	cur    *chunk
	free   chan *chunk
	hashq  chan *chunk
	storeq chan *chunk
	chunks []*chunk
	busy   sync.WaitGroup // chunks being hashed or stored
	stages sync.WaitGroup // the two goroutines

	mu  sync.Mutex
	err error // first store failure
}

// newPipeline starts a pipeline whose next byte goes at file offset size.
// The first chunk starts at the align boundary before size: readHead
// fills it with the file's bytes from there to size (already hashed and
// stored), reading len(b) bytes at off into b, whose capacity holds a
// whole aligned block for a direct read. It is not called when size is a
// multiple of align. The chunks are for direct I/O if the pool's budget
// has one left.
func newPipeline(h hash.Hash, size int64, readHead func(b []byte, off int64) error, store storeFunc, pool *chunkPool) (*pipeline, error) {
	p := &pipeline{
		h:      h,
		store:  store,
		pool:   pool,
		direct: true,
		free:   make(chan *chunk, maxChunks),
		hashq:  make(chan *chunk, maxChunks),
		storeq: make(chan *chunk, maxChunks),
	}
	if p.cur = p.newChunk(); p.cur == nil {
		p.direct = false
		p.cur = p.newChunk()
	}
	p.cur.off = size &^ (align - 1)
	p.cur.n = int(size - p.cur.off)
	p.cur.hashed = p.cur.n
	if p.cur.n > 0 {
		if err := readHead(p.cur.buf[:p.cur.n], p.cur.off); err != nil {
			p.release()
			return nil, err
		}
	}
	p.stages.Add(2)
	go p.hashing()
	go p.storing()
	return p, nil
}

// newChunk adds a chunk to the pipeline's; nil when the pool's budget for
// direct-I/O chunks is spent.
func (p *pipeline) newChunk() *chunk {
	buf := p.pool.get(p.direct)
	if buf == nil {
		return nil
	}
	c := &chunk{buf: buf}
	p.chunks = append(p.chunks, c)
	return c
}

func (p *pipeline) hashing() {
	defer p.stages.Done()
	for c := range p.hashq {
		p.h.Write(c.buf[c.hashed:c.n])
		p.done(c)
	}
}

func (p *pipeline) storing() {
	defer p.stages.Done()
	for c := range p.storeq {
		if p.failure() == nil {
			if err := p.store(c.buf[:roundUp(c.n)], c.off); err != nil {
				p.mu.Lock()
				p.err = err
				p.mu.Unlock()
			}
		}
		p.done(c)
	}
}

// done records that one stage finished with c.
func (p *pipeline) done(c *chunk) {
	p.mu.Lock()
	c.pending--
	last := c.pending == 0
	p.mu.Unlock()
	if !last {
		return
	}
	if !c.keep {
		p.free <- c // never blocks: it holds every chunk
	}
	p.busy.Done()
}

func (p *pipeline) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// submit hands the current chunk to the hash and the store. Unless keep is
// set, the current chunk is full and a free one, starting where it ends,
// replaces it; a full chunk that a flush already stored is not stored
// again, it starts over where it ended.
func (p *pipeline) submit(keep bool) error {
	c := p.cur
	if !keep && c.hashed == c.n {
		c.off, c.n, c.hashed = c.off+int64(c.n), 0, 0
		return p.failure()
	}
	clear(c.buf[c.n:roundUp(c.n)]) // the padding of a last chunk
	c.keep, c.pending = keep, 2
	p.busy.Add(1)
	p.hashq <- c
	p.storeq <- c
	if keep {
		return p.failure()
	}
	var next *chunk
	select {
	case next = <-p.free:
	default:
		if len(p.chunks) < maxChunks {
			next = p.newChunk()
		}
		if next == nil {
			next = <-p.free // c comes back once stored
		}
	}
	next.off, next.n, next.hashed = c.off+int64(c.n), 0, 0
	p.cur = next
	return p.failure()
}

// write takes in b.
func (p *pipeline) write(b []byte) error {
	for len(b) > 0 {
		if p.cur.n == len(p.cur.buf) {
			if err := p.submit(false); err != nil {
				return err
			}
		}
		k := copy(p.cur.buf[p.cur.n:], b)
		p.cur.n += k
		b = b[k:]
	}
	return p.failure()
}

// readFrom reads r into the chunks until r ends. It returns the bytes
// read, r's error (other than io.EOF) as it is, and a store failure.
func (p *pipeline) readFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		if p.cur.n == len(p.cur.buf) {
			if err := p.submit(false); err != nil {
				return total, err
			}
		}
		k, err := r.Read(p.cur.buf[p.cur.n:])
		p.cur.n += k
		total += int64(k)
		if err == io.EOF {
			return total, p.failure()
		}
		if err != nil {
			return total, err
		}
	}
}

// flush stores and hashes everything taken in so far, the last chunk
// padded to a multiple of align with zeros, and waits for it.
func (p *pipeline) flush() error {
	if p.cur.n > p.cur.hashed {
		_ = p.submit(true)
	}
	p.busy.Wait()
	p.cur.hashed = p.cur.n
	return p.failure()
}

// hash returns the hash of everything flushed. The caller may read its
// state but must not write to it.
func (p *pipeline) hash() hash.Hash { return p.h }

// close waits for the chunks in flight, stops the goroutines and returns
// the buffers. What was not flushed is dropped. Later calls do nothing.
func (p *pipeline) close() {
	if p.chunks == nil {
		return
	}
	p.busy.Wait()
	close(p.hashq)
	close(p.storeq)
	p.stages.Wait()
	p.release()
}

func (p *pipeline) release() {
	for _, c := range p.chunks {
		p.pool.put(c.buf, p.direct)
	}
	p.chunks = nil
}

func roundUp(n int) int { return (n + align - 1) &^ (align - 1) }
