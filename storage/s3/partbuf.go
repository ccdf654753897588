package s3

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/atollhq/atoll/storage/diskspace"
)

// An upload holds the bytes of its next part until the part is full,
// however slowly its client sends, and the parts being sent until they
// land: 16 MiB parts let 100 clients that send 12 MB and stall hold
// 1.2 GB. A store's part buffers in memory therefore share a budget, and
// an upload that finds it spent keeps its part in a spill file on local
// disk: the kernel, not the registry, then holds those bytes, and it can
// write them out and reclaim the memory.
const partMemory = 256 << 20

// A partBuf holds bytes of an upload that are not in S3 yet, at most a
// part: in memory, or in an unlinked spill file.
type partBuf struct {
	b      []byte   // the bytes, unless spilled
	pooled bool     // b is a part buffer lent by the pool, holding a token
	f      *os.File // the bytes, when spilled (b is then nil)
	n      int64    // the length of f's bytes
	crc    uint32   // CRC32C of f's bytes
}

func (pb *partBuf) len() int64 {
	if pb.f != nil {
		return pb.n
	}
	return int64(len(pb.b))
}

// room reports whether n more bytes fit without a bigger buffer.
func (pb *partBuf) room(n int) bool {
	return pb.f != nil || len(pb.b)+n <= cap(pb.b)
}

// Write appends p; past a part's size it writes on, the caller bounds it.
func (pb *partBuf) Write(p []byte) (int, error) {
	if pb.f == nil {
		pb.b = append(pb.b, p...)
		return len(p), nil
	}
	n, err := pb.f.WriteAt(p, pb.n)
	pb.n += int64(n)
	pb.crc = crc32.Update(pb.crc, castagnoli, p[:n])
	if err != nil {
		return n, fmt.Errorf("s3 spill part: %w", diskspace.Classify(err)) // a full disk: ErrNoSpace
	}
	return n, nil
}

// reader reads the bytes from the first; it can seek, so a request that
// sends them can be retried.
func (pb *partBuf) reader() io.ReadSeeker {
	if pb.f != nil {
		return io.NewSectionReader(pb.f, 0, pb.n)
	}
	return bytes.NewReader(pb.b)
}

// checksum is the x-amz-checksum-crc32c value of the bytes.
func (pb *partBuf) checksum() string {
	if pb.f == nil {
		return crc32c(pb.b)
	}
	return checksumValue(pb.crc)
}

// partPool lends part buffers (PartSize bytes) to writers: in memory while
// the budget lasts, spill files in dir after that.
type partPool struct {
	size    int64
	mem     sync.Pool     // *[]byte of cap size
	tokens  chan struct{} // one for each part buffer in memory out
	dir     string
	spilled atomic.Int64 // spill files open
	tails   sync.Pool    // *[]byte of cap smallTail
}

// spillPrefix starts the names of spill files.
const spillPrefix = "atoll-part-"

// newPartPool returns a pool of parts of size bytes, budget bytes of them
// in memory (none when a part is larger), spilling into dir (default: the
// system's temporary directory). It removes the spill files a crashed
// process left there.
func newPartPool(size, budget int64, dir string) (*partPool, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("s3 spill directory: %w", err)
	}
	left, err := filepath.Glob(filepath.Join(dir, spillPrefix+"*"))
	if err != nil {
		return nil, fmt.Errorf("s3 spill directory: %w", err)
	}
	for _, name := range left {
		_ = os.Remove(name)
	}
	p := &partPool{size: size, tokens: make(chan struct{}, budget/size), dir: dir}
	p.mem.New = func() any { b := make([]byte, 0, size); return &b }
	p.tails.New = func() any { b := make([]byte, 0, smallTail); return &b }
	return p, nil
}

// tinyTail is the buffer of a blob's first bytes; past it, a blob's bytes
// go to a buffer of smallTail bytes and then to a part buffer.
const tinyTail = 64 << 10

// tail returns an empty buffer for n bytes of a small blob (n <= smallTail):
// the small ones are the collector's, the others are reused, so uploads
// that grow past smallTail leave no garbage of the size of their tails.
func (p *partPool) tail(n int) []byte {
	if n <= tinyTail {
		return make([]byte, 0, tinyTail)
	}
	return (*p.tails.Get().(*[]byte))[:0]
}

// get returns an empty part buffer.
func (p *partPool) get() (*partBuf, error) {
	select {
	case p.tokens <- struct{}{}:
		return &partBuf{b: (*p.mem.Get().(*[]byte))[:0], pooled: true}, nil
	default:
	}
	f, err := os.CreateTemp(p.dir, spillPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("s3 spill part: %w", diskspace.Classify(err))
	}
	if err := os.Remove(f.Name()); err != nil { // gone with the descriptor
		_ = f.Close()
		return nil, fmt.Errorf("s3 spill part: %w", err)
	}
	p.spilled.Add(1)
	return &partBuf{f: f}, nil
}

// put takes back pb and empties it; pb may be nil, not from get, or put
// already.
func (p *partPool) put(pb *partBuf) {
	switch {
	case pb == nil:
		return
	case pb.f != nil:
		_ = pb.f.Close()
		p.spilled.Add(-1)
	case pb.pooled:
		b := pb.b[:0]
		p.mem.Put(&b)
		<-p.tokens
	case cap(pb.b) == smallTail:
		b := pb.b[:0]
		p.tails.Put(&b)
	}
	*pb = partBuf{}
}
