package filesystem

import (
	"sync"
	"unsafe"
)

// An upload holds a chunk from its first byte to its last, however slowly
// the bytes come. Chunks for direct I/O are chunkSize bytes, so uploads
// that trickle in (slow links, or clients that stall on purpose) would
// hold memory without bound: 400 connections that each sent 2 MB and then
// a few bytes a second held 825 MB. A store's direct-I/O chunks therefore
// share a budget. An upload that finds it spent is written through the
// page cache, with small chunks: slower for a fast client, but the kernel,
// not the registry, holds what is not on disk yet, and it can write it
// out and reclaim it.
const (
	// chunkBudget bounds the memory of a store's direct-I/O chunks: 128
	// chunks, 32 uploads at full speed with all of theirs.
	chunkBudget = 256 << 20
	// smallChunk is a chunk's length for an upload written through the
	// page cache.
	smallChunk = 64 << 10
)

// chunkPool hands out chunk buffers, aligned to align, and reuses them.
type chunkPool struct {
	big, small sync.Pool
	tokens     chan struct{} // one for each direct-I/O chunk out
}

func newChunkPool(budget int) *chunkPool {
	return &chunkPool{
		big:    sync.Pool{New: func() any { return alignedBuf(chunkSize) }},
		small:  sync.Pool{New: func() any { return alignedBuf(smallChunk) }},
		tokens: make(chan struct{}, budget/chunkSize),
	}
}

// get returns a direct-I/O chunk buffer when direct is set, or nil when
// the budget is spent; a small one when direct is not set.
func (cp *chunkPool) get(direct bool) []byte {
	if !direct {
		return *cp.small.Get().(*[]byte)
	}
	select {
	case cp.tokens <- struct{}{}:
		return *cp.big.Get().(*[]byte)
	default:
		return nil
	}
}

// put takes back b, got from get(direct).
func (cp *chunkPool) put(b []byte, direct bool) {
	if !direct {
		cp.small.Put(&b)
		return
	}
	cp.big.Put(&b)
	<-cp.tokens
}

// alignedBuf allocates n bytes whose address is a multiple of align.
func alignedBuf(n int) *[]byte {
	b := make([]byte, n+align)
	skip := (align - int(uintptr(unsafe.Pointer(&b[0]))%align)) % align
	b = b[skip : skip+n : skip+n]
	return &b
}
