package placement

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// Replicate while receiving. A client's upload session on this member has
// holders besides this member, chosen when the session writes its first
// bytes (its digest is not known yet, so they cannot be the blob's
// owners): Replicas-1 live members from a ring walk keyed by the session.
// Every byte the client sends is written here and passed on, in 1 MiB
// chunks through a bounded queue per holder (replicastream.go), to each
// holder's replica (replicas.go), which hashes and writes it too; the
// session's state records each replica's. The final PUT then verifies and
// commits here and has every holder commit its replica, which costs what a
// commit costs on one member; rebalancing later moves the copies to the
// ring's owners, and reads find any holder meanwhile (they try every
// member). A holder that failed on the way (it died, it refused a write)
// is dropped from the session, and the commit falls back to Place, which
// copies the blob until Replicas members hold it: the 201 always means
// Replicas durable copies. A blob whose digest is known from the start
// goes to its owners instead (newOwnersWriter), through a chain: this
// member streams the bytes to the first owner only, which passes them on
// to the next as they arrive (replicas.go), so this member's link carries
// each byte once; the first owner's commit answers how many copies the
// chain left. A member that is none of the owners keeps its bytes only as
// the spare that fallback needs, and drops them unsynced once the owners
// confirmed Replicas copies.

// ReplicaTransport is the optional capability of a Transport that keeps
// replicas of uploads on other members (peer.Client has it).
type ReplicaTransport interface {
	// AppendReplica streams what r yields to member's replica id, resumed
	// from state, and returns the state after those bytes, durable there;
	// member passes them on to the members of forward (a chain).
	AppendReplica(ctx context.Context, member, id string, state []byte, forward []string, r io.Reader) ([]byte, int64, error)
	// FinishReplica commits member's replica id, at state, as blob d
	// after member verified it, or discards it when d is "". It returns
	// how many members hold d durably after the commit, as member counts
	// them: at least 1 (a member that cannot forward counts its own).
	FinishReplica(ctx context.Context, member, id string, state []byte, d digest.Digest) (int, error)
}

// sessionState is the state of a replicated upload: this member's
// writer's and each replica's.
type sessionState struct {
	Local    []byte         `json:"local"`
	Replicas []replicaState `json:"replicas"`
}

// replicaState is one holder's replica: its member, the state of its
// writer there and its size, and the members it passes the bytes on to
// (the rest of a chain). A replica that failed is dropped.
type replicaState struct {
	Member  string   `json:"member"`
	State   []byte   `json:"state,omitempty"`
	Size    int64    `json:"size"`
	Forward []string `json:"forward,omitempty"`
}

// parseSessionState returns state as a sessionState, if it is one (the
// state of a local writer alone is not).
func parseSessionState(state []byte) (sessionState, bool) {
	var st sessionState
	if state == nil || json.Unmarshal(state, &st) != nil || st.Local == nil {
		return sessionState{}, false
	}
	return st, true
}

// chain returns the replica that passes the bytes to members in a chain:
// the first receives them and forwards them to the rest, each to the next.
func chain(members []string) []*replicaStream {
	if len(members) == 0 {
		return nil
	}
	return []*replicaStream{{replicaState: replicaState{Member: members[0], Forward: members[1:]}}}
}

// replicatingWriter is a client's upload on this member, passed on to the
// session's other holders as the bytes arrive (replicastream.go).
type replicatingWriter struct {
	storage.BlobWriter // this member's copy
	p                  *Placer
	rt                 ReplicaTransport
	id                 string
	replicas           []*replicaStream
	// chunk gathers the bytes written since the last full chunk went to
	// the replicas.
	chunk []byte
	// dropped says a holder failed since the session began: the commit
	// falls back to Place.
	dropped bool
	// owners says the holders are the blob's owners (its digest was known
	// from the start); surplus, that this member is not one of them.
	owners, surplus bool
}

// newReplicatingWriter returns the writer of session id over local, its
// copy here, resumed from state (nil for a new session, which chooses its
// holders now).
func (p *Placer) newReplicatingWriter(rt ReplicaTransport, local func(state []byte) (storage.BlobWriter, error), id string, state []byte) (storage.BlobWriter, error) {
	var w *replicatingWriter
	var err error
	st, ok := parseSessionState(state)
	switch {
	case state == nil:
		w = &replicatingWriter{p: p, rt: rt, id: id}
		for _, m := range p.holders(id) {
			w.replicas = append(w.replicas, &replicaStream{replicaState: replicaState{Member: m}})
		}
		w, err = w.openLocal(local, nil)
	case !ok:
		// A session begun before replication: committed and placed as it
		// always was.
		w = &replicatingWriter{p: p, rt: rt, id: id, dropped: true}
		w, err = w.openLocal(local, state)
	default:
		w, err = p.resumeWriter(rt, local, id, st)
	}
	if err != nil {
		return nil, err // not a nil *replicatingWriter in the interface
	}
	return w, nil
}

// resumeWriter returns the writer of session id resumed from st.
func (p *Placer) resumeWriter(rt ReplicaTransport, local func(state []byte) (storage.BlobWriter, error), id string, st sessionState) (*replicatingWriter, error) {
	w := &replicatingWriter{p: p, rt: rt, id: id}
	for _, r := range st.Replicas {
		w.replicas = append(w.replicas, &replicaStream{replicaState: r})
	}
	return w.openLocal(local, st.Local)
}

// newChainWriter returns the writer of a new replica of session id that
// heads a chain: its bytes go on to the live members of forward. A member
// of forward that is not live is left out, and the commit then places.
func (p *Placer) newChainWriter(rt ReplicaTransport, local func(state []byte) (storage.BlobWriter, error), id string, forward []string) (*replicatingWriter, error) {
	w := &replicatingWriter{p: p, rt: rt, id: id, owners: true}
	var live []string
	for _, m := range forward {
		if p.liveOther(m) {
			live = append(live, m)
		}
	}
	w.replicas, w.dropped = chain(live), len(live) < len(forward)
	return w.openLocal(local, nil)
}

// openLocal opens w's copy here, at state.
func (w *replicatingWriter) openLocal(local func(state []byte) (storage.BlobWriter, error), state []byte) (*replicatingWriter, error) {
	bw, err := local(state)
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

// Write writes b here and passes it on to every replica: each full chunk
// joins the replica's queue, and Write waits only for a replica a window
// behind. A replica that fails is dropped; only a failure here fails the
// write (and the caller then closes the writer, which aborts the streams:
// the replicas stay at their last state, like this member's copy).
func (w *replicatingWriter) Write(b []byte) (int, error) {
	n, err := w.BlobWriter.Write(b)
	if len(w.replicas) == 0 {
		return n, err
	}
	for rest := b[:n]; len(rest) > 0; {
		if w.chunk == nil {
			w.chunk = make([]byte, 0, replicaChunk) // never reused: see replicaStream
		}
		k := copy(w.chunk[len(w.chunk):cap(w.chunk)], rest)
		w.chunk, rest = w.chunk[:len(w.chunk)+k], rest[k:]
		if len(w.chunk) == cap(w.chunk) {
			w.push()
		}
	}
	return n, err
}

// push hands the gathered chunk to every replica, opening the streams
// that are not, and drops the replicas that fail.
func (w *replicatingWriter) push() {
	chunk := w.chunk
	w.chunk = nil
	if len(chunk) == 0 {
		return
	}
	for _, r := range w.replicas {
		if r.q == nil {
			w.open(r)
		}
		if err := w.send(r, chunk); err != nil {
			w.drop(r, err)
		}
	}
	w.compact()
}

// drop ends replica r's stream, if any, and removes it from the session.
func (w *replicatingWriter) drop(r *replicaStream, err error) {
	if r.q != nil {
		if res := r.abort(); res.err != nil && !errors.Is(err, errReplicaStalled) {
			err = res.err
		}
	}
	w.p.log.Warn("upload replica dropped", "upload", w.id, "member", r.Member, "err", err)
	// Its bytes are of no use now: discard them if the holder answers
	// (else its upload purge does, after the upload TTL). The members a
	// chain's head forwarded to are asked too: a head that is gone cannot.
	go func(r replicaState) {
		ctx, cancel := context.WithTimeout(context.Background(), w.p.limits.durable)
		defer cancel()
		_, _ = w.rt.FinishReplica(ctx, r.Member, w.id, r.State, "")
		for _, m := range r.Forward {
			_, _ = w.rt.FinishReplica(ctx, m, w.id, nil, "")
		}
	}(r.replicaState)
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

// endStreams hands the last chunk to the replicas and closes their
// queues: each holder makes its bytes durable while the caller goes on.
// collect then waits for them, which must hold size, the upload's size
// now (the local writer's Size may not outlive its commit).
func (w *replicatingWriter) endStreams() (size int64) {
	w.push()
	for _, r := range w.replicas {
		if r.q == nil && r.State == nil && len(r.Forward) > 0 {
			// No bytes came (an empty blob): the chain is still set up,
			// so that its head's commit passes on.
			w.open(r)
		}
		if r.q != nil {
			r.end()
		}
	}
	return w.BlobWriter.Size()
}

// collect waits for every stream endStreams ended, records each replica's
// new state and drops the replicas that failed or hold another size.
func (w *replicatingWriter) collect(size int64) {
	for _, r := range w.replicas {
		if r.q == nil {
			continue
		}
		res := r.finish(w.p.limits.durable)
		switch {
		case res.err != nil:
			w.drop(r, res.err)
		case res.size != size:
			w.drop(r, fmt.Errorf("replica holds %d bytes, the upload %d", res.size, size))
		default:
			r.State, r.Size = res.state, res.size
		}
	}
	w.compact()
}

// abort ends every open stream without keeping its bytes: each replica
// stays at its last state.
func (w *replicatingWriter) abort() {
	w.chunk = nil
	for _, r := range w.replicas {
		if r.q != nil {
			_ = r.abort()
		}
	}
}

// State makes the bytes durable here and on every replica and returns the
// session's state.
func (w *replicatingWriter) State() ([]byte, error) {
	size := w.endStreams()
	local, err := w.BlobWriter.State()
	w.collect(size)
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
// The holders make their bytes durable while this member commits its own.
func (w *replicatingWriter) Commit(ctx context.Context, d digest.Digest) error {
	_, err := w.commit(ctx, d, false)
	return err
}

// commit is Commit, which returns how many members hold d durably after
// it. With held, this member holds d already: its upload is discarded.
func (w *replicatingWriter) commit(ctx context.Context, d digest.Digest, held bool) (int, error) {
	size := w.endStreams()
	if w.surplus {
		return w.commitSurplus(ctx, d, size)
	}
	var err error
	if held {
		if cerr := w.BlobWriter.Cancel(ctx); cerr != nil {
			w.p.log.Warn("dropping upload of a held blob", "upload", w.id, "blob", d, "err", cerr)
		}
	} else {
		err = w.BlobWriter.Commit(ctx, d)
	}
	w.collect(size)
	if err != nil {
		if errors.Is(err, storage.ErrDigestMismatch) {
			w.finishReplicas(ctx, "")
		}
		return 0, err
	}
	_, copies := w.finishReplicas(ctx, d)
	copies++
	switch {
	case w.dropped || copies < w.need():
		if err := w.p.Place(ctx, d); err != nil {
			return 0, err
		}
		return w.need(), nil
	case !w.owners:
		w.p.Kick() // the copies move to the ring's owners
	}
	return copies, nil
}

// commitSurplus commits blob d, known from the start, on its owners, this
// member being none of them. When the owners confirmed Replicas copies,
// durable and verified there (a chain's head counts those it forwarded
// to), this member's bytes were only a spare: they are dropped without
// ever being made durable here. Otherwise this member commits them
// (verifying them) and Place copies the blob on.
func (w *replicatingWriter) commitSurplus(ctx context.Context, d digest.Digest, size int64) (int, error) {
	w.collect(size)
	ok, copies := w.finishReplicas(ctx, d)
	if !w.dropped && ok == len(w.replicas) && copies >= w.need() {
		if err := w.BlobWriter.Cancel(ctx); err != nil {
			w.p.log.Warn("dropping surplus upload", "upload", w.id, "blob", d, "err", err)
		}
		return copies, nil
	}
	if err := w.BlobWriter.Commit(ctx, d); err != nil {
		// On a mismatch the holders, which verified d too, kept nothing.
		return 0, err
	}
	if err := w.p.Place(ctx, d); err != nil {
		return 0, err
	}
	return w.need(), nil
}

// need is how many copies a commit must leave: Replicas, or every live
// member if fewer.
func (w *replicatingWriter) need() int {
	return min(w.p.cfg.Replicas, w.p.deps.Members.Ring().Len())
}

// newOwnersWriter returns the writer of new upload id of blob d, whose
// bytes go to d's other live owners as they arrive, in a chain; this
// member keeps its copy only if it is one of them.
func (p *Placer) newOwnersWriter(rt ReplicaTransport, local storage.BlobWriter, id string, d digest.Digest) *replicatingWriter {
	w := &replicatingWriter{BlobWriter: local, p: p, rt: rt, id: id, owners: true, surplus: true}
	r := p.deps.Members.Ring()
	var others []string
	for _, m := range r.Owners(d, min(p.cfg.Replicas, r.Len())) {
		switch {
		case m == p.deps.Self:
			w.surplus = false
		case p.liveOther(m):
			others = append(others, m)
		}
	}
	w.replicas = chain(others)
	return w
}

// finishReplicas commits every replica as blob d, or discards them when d
// is "", in parallel, and returns how many did and how many copies of d
// their members counted.
func (w *replicatingWriter) finishReplicas(ctx context.Context, d digest.Digest) (ok, copies int) {
	var wg sync.WaitGroup
	errs := make([]error, len(w.replicas))
	counts := make([]int, len(w.replicas))
	for i, r := range w.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, w.p.limits.durable)
			defer cancel()
			counts[i], errs[i] = w.rt.FinishReplica(ctx, r.Member, w.id, r.State, d)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			w.p.log.Warn("finishing upload replica", "upload", w.id, "member", w.replicas[i].Member, "blob", d, "err", err)
			continue
		}
		ok, copies = ok+1, copies+counts[i]
	}
	return ok, copies
}
