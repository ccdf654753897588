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
// Methods are called by one goroutine at a time.
type Async struct {
	h    hash.Hash
	work chan []byte // filled buffers, nil to ask for a sync
	free chan []byte // empty buffers
	sync chan struct{}
	done chan struct{}
}

const (
	hashBufSize  = 256 << 10
	hashBufCount = 8
)

var hashBufs = sync.Pool{New: func() any { b := make([]byte, hashBufSize); return &b }}

func NewAsync(h hash.Hash) *Async {
	a := &Async{
		h:    h,
		work: make(chan []byte, hashBufCount),
		free: make(chan []byte, hashBufCount),
		sync: make(chan struct{}),
		done: make(chan struct{}),
	}
	for range hashBufCount {
		a.free <- (*hashBufs.Get().(*[]byte))[:0]
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
		a.free <- b[:0]
	}
}

// Write queues a copy of p for hashing.
func (a *Async) Write(p []byte) {
	for len(p) > 0 {
		b := <-a.free
		n := copy(b[:cap(b)], p)
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

// Close stops the goroutine and returns the buffers.
func (a *Async) Close() {
	close(a.work)
	<-a.done
	for range hashBufCount {
		b := <-a.free
		hashBufs.Put(&b)
	}
}
