// Package hashing hashes blob bytes beside the work of storing them.
package hashing

import (
	"hash"
	"sync"
)

// Async feeds a hash on its own goroutine, so hashing an upload overlaps
// receiving it and storing it (as parts sent to S3; the filesystem store
// hashes the chunks it writes from, without this copy): on a push,
// SHA-256 is the largest CPU cost and would otherwise run in series with
// both. Write copies its input; Hash returns once everything written is
// hashed.
//
// A buffer goes back to a pool shared by every Async as soon as its bytes
// are hashed, so an upload whose client stalls holds none (each held
// eight, 2 MiB, from its first byte to its last: 200 MiB for 100 stalled
// clients).
// Methods are called by one goroutine at a time.
type Async struct {
	h       hash.Hash
	work    chan []byte   // filled buffers, nil to ask for a sync
	pending chan struct{} // one for each buffer written and not yet hashed
	sync    chan struct{}
	done    chan struct{}
}

const (
	hashBufSize  = 256 << 10
	hashBufCount = 8 // buffers of one Async written and not yet hashed, at most
)

var hashBufs = sync.Pool{New: func() any { b := make([]byte, hashBufSize); return &b }}

func NewAsync(h hash.Hash) *Async {
	a := &Async{
		h:       h,
		work:    make(chan []byte, hashBufCount),
		pending: make(chan struct{}, hashBufCount),
		sync:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go a.run()
	return a
}

func (a *Async) run() {
	defer close(a.done)
	for b := range a.work {
		if b == nil {
			a.sync <- struct{}{}
			continue
		}
		a.h.Write(b)
		b = b[:cap(b)]
		hashBufs.Put(&b)
		<-a.pending
	}
}

// Write queues a copy of p for hashing.
func (a *Async) Write(p []byte) {
	for len(p) > 0 {
		a.pending <- struct{}{}
		b := *hashBufs.Get().(*[]byte)
		n := copy(b, p)
		a.work <- b[:n]
		p = p[n:]
	}
}

// Hash waits until every byte written is hashed and returns the hash. The
// caller may read its state but must not write to it.
func (a *Async) Hash() hash.Hash {
	a.work <- nil
	<-a.sync
	return a.h
}

// Close stops the goroutine once everything written is hashed.
func (a *Async) Close() {
	close(a.work)
	<-a.done
}
