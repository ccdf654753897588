package placement

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// Replicate while receiving. A client's upload session on this member has
// holders besides this member, chosen when the session writes its first
// bytes (its digest is not known yet, so they cannot be the blob's
// owners): Replicas-1 live members from a ring walk keyed by the session.
// Every byte the client sends is written here and passed on at once to
// each holder's replica (replicas.go), which hashes and writes it too; the
// session's state records each replica's. The final PUT then verifies and
// commits here and has every holder commit its replica, which costs what a
// commit costs on one member; rebalancing later moves the copies to the
// ring's owners, and reads find any holder meanwhile (they try every
// member). A holder that failed on the way (it died, it refused a write)
// is dropped from the session, and the commit falls back to Place, which
// copies the blob until Replicas members hold it: the 201 always means
// Replicas durable copies.

// ReplicaTransport is the optional capability of a Transport that keeps
// replicas of uploads on other members (peer.Cluster has it).
type ReplicaTransport interface {
	// AppendReplica streams what r yields to member's replica id, resumed
	// from state, and returns the state after those bytes, durable there.
	AppendReplica(ctx context.Context, member, id string, state []byte, r io.Reader) ([]byte, int64, error)
	// FinishReplica commits member's replica id, at state, as blob d
	// after member verified it, or discards it when d is "".
	FinishReplica(ctx context.Context, member, id string, state []byte, d digest.Digest) error
}

// sessionState is the state of a replicated upload: this member's
// writer's and each replica's.
type sessionState struct {
	Local    []byte         `json:"local"`
	Replicas []replicaState `json:"replicas"`
}

// replicaState is one holder's replica: its member, the state of its
// writer there and its size. A replica that failed is dropped.
type replicaState struct {
	Member string `json:"member"`
	State  []byte `json:"state,omitempty"`
	Size   int64  `json:"size"`
}

// replicatingWriter is a client's upload on this member, passed on to the
// session's other holders as the bytes arrive.
type replicatingWriter struct {
	storage.BlobWriter // this member's copy
	p                  *Placer
	rt                 ReplicaTransport
	id                 string
	replicas           []*replicaStream
	// dropped says a holder failed since the session began: the commit
	// falls back to Place.
	dropped bool
	// owners says the holders are the blob's owners (its digest was known
	// from the start); surplus, that this member is not one of them.
	owners, surplus bool
}

// replicaStream is a replica with, while bytes flow, the stream to it.
type replicaStream struct {
	replicaState
	pw     *io.PipeWriter
	cancel context.CancelFunc // aborts the stream
	done   chan appendResult
}

// replicaStall is how long a holder that the cluster no longer counts as
// live may take to accept the next bytes before it is dropped: a member
// that stopped answering (frozen, its network gone) does not hold up the
// client for longer. A live one gets replicaDurable.
const replicaStall = 5 * time.Second

// replicaDurable bounds how long a holder may take to make its replica
// durable (the rest of its writeback) or to commit it.
const replicaDurable = time.Minute

var errReplicaStalled = errors.New("replica takes no bytes")

type appendResult struct {
	state []byte
	size  int64
	err   error
}

// newReplicatingWriter returns the writer of session id over local, its
// copy here, resumed from state (nil for a new session, which chooses its
// holders now).
func (p *Placer) newReplicatingWriter(rt ReplicaTransport, local func(state []byte) (storage.BlobWriter, error), id string, state []byte) (storage.BlobWriter, error) {
	w := &replicatingWriter{p: p, rt: rt, id: id}
	var localState []byte
	switch {
	case state == nil:
		for _, m := range p.holders(id) {
			w.replicas = append(w.replicas, &replicaStream{replicaState: replicaState{Member: m}})
		}
	default:
		var st sessionState
		if err := json.Unmarshal(state, &st); err != nil || st.Local == nil {
			// A session begun before replication: committed and placed
			// as it always was.
			localState, w.dropped = state, true
			break
		}
		localState = st.Local
		for _, r := range st.Replicas {
			w.replicas = append(w.replicas, &replicaStream{replicaState: r})
		}
	}
	bw, err := local(localState)
	if err != nil {
		return nil, err
	}
	w.BlobWriter = bw
	return w, nil
}

// holders returns the members besides this one that hold session id's
// bytes as they arrive: the first Replicas-1 live others of the ring's
// walk from the session's id.
func (p *Placer) holders(id string) []string {
	r := p.deps.Members.Ring()
	need := min(p.cfg.Replicas, r.Len()) - 1
	var out []string
	for _, m := range r.Owners(digest.FromString(id), r.Len()) {
		if len(out) >= need {
			break
		}
		if p.liveOther(m) {
			out = append(out, m)
		}
	}
	return out
}

// Write writes b here and, at the same time, passes it on to every
// replica. A replica that fails is dropped; only a failure here fails the
// write (and the caller then closes the writer, which aborts the streams:
// the replicas stay at their last state, like this member's copy).
func (w *replicatingWriter) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	errs := make([]error, len(w.replicas))
	var wg sync.WaitGroup
	for i, r := range w.replicas {
		if r.pw == nil {
			w.open(r)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.send(r, b)
		}()
	}
	n, err := w.BlobWriter.Write(b)
	wg.Wait()
	for i, r := range w.replicas {
		if errs[i] != nil {
			w.drop(r, errs[i])
		}
	}
	w.compact()
	return n, err
}

// send passes b on to replica r. A holder that takes no bytes for
// replicaStall and is no longer live, or for replicaDurable, fails it.
func (w *replicatingWriter) send(r *replicaStream, b []byte) error {
	done := make(chan error, 1)
	go func() {
		_, err := r.pw.Write(b)
		done <- err
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			waited := time.Since(start)
			if waited > replicaDurable || waited > replicaStall && !w.p.deps.Members.Live(r.Member) {
				_ = r.pw.CloseWithError(errReplicaStalled)
				<-done
				return errReplicaStalled
			}
		}
	}
}

// open starts the stream of bytes to replica r. It runs on a context of
// its own: the stream ends when the writer says so (State, Commit, Close),
// not when the request that brought the bytes does.
func (w *replicatingWriter) open(r *replicaStream) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	r.pw, r.cancel, r.done = pw, cancel, make(chan appendResult, 1)
	go func(state []byte) {
		next, size, err := w.rt.AppendReplica(ctx, r.Member, w.id, state, pr)
		_ = pr.CloseWithError(errReplicaGone) // unblocks a Write if the call ended early
		r.done <- appendResult{next, size, err}
	}(r.State)
}

var errReplicaGone = errors.New("replica stream ended")

// drop ends replica r's stream, if any, and removes it from the session.
func (w *replicatingWriter) drop(r *replicaStream, err error) {
	if r.pw != nil {
		_ = r.pw.CloseWithError(err)
		r.cancel()
		if res := <-r.done; res.err != nil && !errors.Is(err, errReplicaStalled) {
			err = res.err
		}
		r.pw = nil
	}
	w.p.log.Warn("upload replica dropped", "upload", w.id, "member", r.Member, "err", err)
	// Its bytes are of no use now: discard them if the holder answers
	// (else its upload purge does, after the upload TTL).
	go func(member string, state []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), replicaDurable)
		defer cancel()
		_ = w.rt.FinishReplica(ctx, member, w.id, state, "")
	}(r.Member, r.State)
	r.Member, w.dropped = "", true
}

// compact removes the dropped replicas.
func (w *replicatingWriter) compact() {
	kept := w.replicas[:0]
	for _, r := range w.replicas {
		if r.Member != "" {
			kept = append(kept, r)
		}
	}
	w.replicas = kept
}

// flush ends every open stream, its bytes durable on its member, in
// parallel, and records each replica's new state.
func (w *replicatingWriter) flush() {
	for _, r := range w.replicas {
		if r.pw != nil {
			_ = r.pw.Close()
		}
	}
	for _, r := range w.replicas {
		if r.pw == nil {
			continue
		}
		res := r.wait()
		r.pw = nil
		switch {
		case res.err != nil:
			w.drop(r, res.err)
		case res.size != w.BlobWriter.Size():
			w.drop(r, fmt.Errorf("replica holds %d bytes, the upload %d", res.size, w.BlobWriter.Size()))
		default:
			r.State, r.Size = res.state, res.size
		}
	}
	w.compact()
}

// wait returns the outcome of r's closed stream, aborting it if the
// holder takes longer than replicaDurable.
func (r *replicaStream) wait() appendResult {
	stall := time.NewTimer(replicaDurable)
	defer stall.Stop()
	select {
	case res := <-r.done:
		r.cancel()
		return res
	case <-stall.C:
		r.cancel()
		<-r.done
		return appendResult{err: fmt.Errorf("replica not durable after %v", replicaDurable)}
	}
}

// abort ends every open stream without keeping its bytes: each replica
// stays at its last state.
func (w *replicatingWriter) abort() {
	for _, r := range w.replicas {
		if r.pw != nil {
			_ = r.pw.CloseWithError(errReplicaGone)
			r.cancel()
			<-r.done
			r.pw = nil
		}
	}
}

// State makes the bytes durable here and on every replica and returns the
// session's state.
func (w *replicatingWriter) State() ([]byte, error) {
	w.flush()
	local, err := w.BlobWriter.State()
	if err != nil {
		return nil, err
	}
	st := sessionState{Local: local, Replicas: []replicaState{}}
	for _, r := range w.replicas {
		st.Replicas = append(st.Replicas, r.replicaState)
	}
	return json.Marshal(st)
}

// Close keeps the upload as of its last State, here and on the replicas.
func (w *replicatingWriter) Close() error {
	w.abort()
	return w.BlobWriter.Close()
}

// Cancel discards the upload here and on the replicas.
func (w *replicatingWriter) Cancel(ctx context.Context) error {
	w.abort()
	w.finishReplicas(ctx, "")
	return w.BlobWriter.Cancel(ctx)
}

// Commit verifies and commits blob d here and has every replica do the
// same. With fewer than Replicas copies that way, Place copies the blob on.
func (w *replicatingWriter) Commit(ctx context.Context, d digest.Digest) error {
	w.flush()
	if err := w.BlobWriter.Commit(ctx, d); err != nil {
		if errors.Is(err, storage.ErrDigestMismatch) {
			w.finishReplicas(ctx, "")
		}
		return err
	}
	held := w.finishReplicas(ctx, d)
	if !w.surplus {
		held++
	}
	r := w.p.deps.Members.Ring()
	switch {
	case w.dropped || held < min(w.p.cfg.Replicas, r.Len()):
		return w.p.Place(ctx, d)
	case w.surplus:
		// The owners confirmed their copies; this one is surplus.
		if err := w.p.deps.Local.Delete(ctx, d); err != nil && !errors.Is(err, storage.ErrBlobUnknown) {
			w.p.log.Warn("dropping surplus copy", "blob", d, "err", err)
		}
	case !w.owners:
		w.p.Kick() // the copies move to the ring's owners
	}
	return nil
}

// newOwnersWriter returns the writer of new upload id of blob d, whose
// bytes go to d's owners as they arrive; this member keeps its copy only
// if it is one of them.
func (p *Placer) newOwnersWriter(rt ReplicaTransport, local storage.BlobWriter, id string, d digest.Digest) *replicatingWriter {
	w := &replicatingWriter{BlobWriter: local, p: p, rt: rt, id: id, owners: true, surplus: true}
	r := p.deps.Members.Ring()
	for _, m := range r.Owners(d, min(p.cfg.Replicas, r.Len())) {
		switch {
		case m == p.deps.Self:
			w.surplus = false
		case p.liveOther(m):
			w.replicas = append(w.replicas, &replicaStream{replicaState: replicaState{Member: m}})
		}
	}
	return w
}

// finishReplicas commits every replica as blob d, or discards them when d
// is "", in parallel, and returns how many committed.
func (w *replicatingWriter) finishReplicas(ctx context.Context, d digest.Digest) int {
	var wg sync.WaitGroup
	errs := make([]error, len(w.replicas))
	for i, r := range w.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, replicaDurable)
			defer cancel()
			errs[i] = w.rt.FinishReplica(ctx, r.Member, w.id, r.State, d)
		}()
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		if err != nil {
			w.p.log.Warn("finishing upload replica", "upload", w.id, "member", w.replicas[i].Member, "blob", d, "err", err)
			continue
		}
		ok++
	}
	return ok
}
