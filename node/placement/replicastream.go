package placement

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// A replica's stream: the bytes of a client's upload on their way to one
// holder. The writer gathers the client's bytes into chunks of
// replicaChunk, hands each full chunk to every holder's queue and goes on;
// one pump per open stream (a goroutine running the transport's
// AppendReplica) takes them in order. Invariants:
//
//   - order: a holder receives the chunks in the order the client wrote
//     them, each exactly once (one FIFO queue, one reader);
//   - bounded: a queue holds at most replicaWindow chunks, so a holder
//     costs at most replicaWindow*replicaChunk bytes of memory, and the
//     client's Write waits only for a holder that fell that far behind
//     (backpressure);
//   - a chunk handed to a queue is never written again (the transport may
//     keep it after sending it);
//   - a holder that takes no chunk for replicaLimits.stall while the
//     cluster no longer counts it live, or for replicaLimits.durable, or
//     whose stream ended
//     before its bytes did, is dropped; nothing else stops the client.

const (
	// replicaChunk is the size of the chunks sent to holders: one gRPC
	// message each.
	replicaChunk = 1 << 20
	// replicaWindow is how many chunks may wait for one holder.
	replicaWindow = 8
)

// replicaLimits bound how long a holder may keep a client waiting.
type replicaLimits struct {
	// stall is how long a holder that the cluster no longer counts as
	// live may take to accept the next bytes before it is dropped: a
	// member that stopped answering (frozen, its network gone) does not
	// hold up the client for longer. A live one gets durable.
	stall time.Duration
	// durable bounds how long a holder may take to accept the next bytes,
	// to make its replica durable (the rest of its writeback) or to
	// commit it.
	durable time.Duration
}

// The limits of a Placer.
const (
	replicaStall   = 5 * time.Second
	replicaDurable = time.Minute
)

var (
	errReplicaStalled = errors.New("replica takes no bytes")
	errReplicaGone    = errors.New("replica stream ended")
)

// replicaStream is a replica with, while bytes flow, the stream to it.
// Only the writer that owns it touches its fields.
type replicaStream struct {
	replicaState
	q      chan []byte   // chunks for the pump; nil while no stream is open
	stop   chan struct{} // closed to abort the stream
	cancel context.CancelFunc
	done   chan appendResult // the pump's outcome, sent once
	res    *appendResult     // the outcome, once received from done
}

type appendResult struct {
	state []byte
	size  int64
	err   error
}

// open starts the stream of chunks to replica r, resumed from its state.
// It runs on a context of its own: the stream ends when the writer says so
// (State, Commit, Close), not when the request that brought the bytes
// does.
func (w *replicatingWriter) open(r *replicaStream) {
	ctx, cancel := context.WithCancel(context.Background())
	r.q, r.stop, r.cancel = make(chan []byte, replicaWindow), make(chan struct{}), cancel
	r.done, r.res = make(chan appendResult, 1), nil
	src := &chunkReader{q: r.q, stop: r.stop}
	go func(state []byte) {
		next, size, err := w.rt.AppendReplica(ctx, r.Member, w.id, state, r.Forward, src)
		r.done <- appendResult{next, size, err}
	}(r.State)
}

// send hands chunk to r's stream, waiting while r's queue is full, and
// fails if the stream ended or the holder stalls (see the invariants).
func (w *replicatingWriter) send(r *replicaStream, chunk []byte) error {
	if res, ok := r.ended(); ok {
		return endedEarly(res)
	}
	select {
	case r.q <- chunk:
		return nil
	default:
	}
	// The holder is a window behind: wait for it while it lives.
	lim := w.p.limits
	tick := time.NewTicker(min(time.Second, lim.stall/4))
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case r.q <- chunk:
			return nil
		case res := <-r.done:
			r.res = &res
			return endedEarly(res)
		case <-tick.C:
			waited := time.Since(start)
			if waited > lim.durable || waited > lim.stall && !w.p.deps.Members.Live(r.Member) {
				return errReplicaStalled
			}
		}
	}
}

// endedEarly is the error of a stream that ended while bytes were still
// to come.
func endedEarly(res appendResult) error {
	if res.err != nil {
		return res.err
	}
	return errReplicaGone
}

// ended reports r's outcome if its pump has ended, without waiting.
func (r *replicaStream) ended() (appendResult, bool) {
	if r.res != nil {
		return *r.res, true
	}
	select {
	case res := <-r.done:
		r.res = &res
		return res, true
	default:
		return appendResult{}, false
	}
}

// abort ends r's open stream without keeping its bytes (the holder's
// replica stays at its last state) and returns its outcome.
func (r *replicaStream) abort() appendResult {
	close(r.stop)
	r.cancel()
	res := r.outcome()
	r.q = nil
	return res
}

// outcome waits for the end of r's pump.
func (r *replicaStream) outcome() appendResult {
	if res, ok := r.ended(); ok {
		return res
	}
	res := <-r.done
	r.res = &res
	return res
}

// end closes r's queue: the stream ends after the chunks queued so far,
// and the holder makes them durable.
func (r *replicaStream) end() { close(r.q) }

// finish waits for the outcome of r's ended stream, the bytes durable on
// the holder; the stream is aborted if the holder takes longer than
// durable.
func (r *replicaStream) finish(durable time.Duration) appendResult {
	if res, ok := r.ended(); ok {
		r.cancel()
		r.q = nil
		return res
	}
	stall := time.NewTimer(durable)
	defer stall.Stop()
	select {
	case res := <-r.done:
		r.res = &res
		r.cancel()
		r.q = nil
		return res
	case <-stall.C:
		_ = r.abort()
		return appendResult{err: fmt.Errorf("replica not durable after %v", durable)}
	}
}

// chunkReader is what a pump's AppendReplica reads: the chunks of q in
// order until q is closed (io.EOF) or stop is (errReplicaGone).
type chunkReader struct {
	q    <-chan []byte
	stop <-chan struct{}
	buf  []byte // the rest of the chunk Read is in
}

// NextChunk returns the next chunk whole. The caller may keep it: nobody
// writes it again. A transport that sends chunks as they are (peer's
// Cluster) uses it instead of Read.
func (c *chunkReader) NextChunk() ([]byte, error) {
	if len(c.buf) > 0 {
		b := c.buf
		c.buf = nil
		return b, nil
	}
	select {
	case b, ok := <-c.q:
		if !ok {
			return nil, io.EOF
		}
		return b, nil
	case <-c.stop:
		return nil, errReplicaGone
	}
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.buf) == 0 {
		b, err := c.NextChunk()
		if err != nil {
			return 0, err
		}
		c.buf = b
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}
