package placement

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// The other side of replicate-while-receiving (replicate.go): the replica
// of an upload another member receives from a client. It is an upload of
// this member's store named replicaPrefix + the session's id, written as
// the bytes come (hashing as they pass), and committed as the blob when
// the client's final PUT names its digest. A replica nobody finishes is
// purged with the other upload bytes after the upload TTL.
//
// A replica may head a chain: the member sending the bytes names the
// members this one passes them on to as they arrive (forward), and this
// member's replica is then a replicatingWriter of its own whose replicas
// are theirs (a blob's owners, when the sender is none of them: the
// sender's link carries each byte once, not once per owner). Its state is
// a sessionState covering the forwarded replicas, so a resumed Append or
// the Finish resumes the chain, and the Finish commits like the sender's
// own commit: this copy, then the forwarded ones, with Place when one was
// lost, and answers how many copies the blob has.

// replicaPrefix names the upload that holds a replica of another member's
// session.
const replicaPrefix = "replica-"

// replicaHook links a PeerBlobs to the placer of its member, once there
// is one: the placer hears of the blobs replicas became (it rebalances, so
// a copy on a member the ring does not name moves to the blob's owners),
// and a replica heading a chain passes its bytes on through it. Shared by
// the copies of a PeerBlobs.
type replicaHook struct {
	mu sync.Mutex
	p  *Placer
}

func (h *replicaHook) set(p *Placer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.p = p
}

// placer returns the member's placer, nil before there is one.
func (h *replicaHook) placer() *Placer {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.p
}

func (h *replicaHook) fire() {
	if p := h.placer(); p != nil {
		p.Kick()
	}
}

// replicaUpload returns the name of the upload holding a replica of
// session id.
func replicaUpload(id string) (string, error) {
	if id == "" || strings.ContainsAny(id, `/\`) {
		return "", fmt.Errorf("replica of upload %q: %w", id, storage.ErrUploadUnknown)
	}
	return replicaPrefix + id, nil
}

// AppendReplica implements peer.Replicas: it appends what r yields to the
// replica of session id, resumed from state, and passes it on to the
// members of forward (see the chain above), and returns the state after
// those bytes, durable. If r fails the replica stays as it was at state.
func (pb PeerBlobs) AppendReplica(ctx context.Context, id string, state []byte, forward []string, r io.Reader) ([]byte, int64, error) {
	w, err := pb.replica(ctx, id, state, forward)
	if err != nil {
		return nil, 0, err
	}
	defer w.Close()
	if _, err := io.Copy(w, r); err != nil {
		return nil, 0, fmt.Errorf("replica of upload %s: %w", id, err)
	}
	next, err := w.State()
	if err != nil {
		return nil, 0, err
	}
	return next, w.Size(), nil
}

// FinishReplica implements peer.Replicas: it commits the replica of
// session id, at state, as blob d after verifying it, or discards it when
// d is "", and returns how many members hold d durably after the commit.
// A blob already held is kept and the replica dropped. A chain's head
// succeeds only with Replicas copies (or as many as there are live
// members): the forwarded replicas' and, past any that was lost, Place's.
func (pb PeerBlobs) FinishReplica(ctx context.Context, id string, state []byte, d digest.Digest) (int, error) {
	w, err := pb.replica(ctx, id, state, nil)
	if err != nil {
		return 0, err
	}
	if d == "" {
		return 0, w.Cancel(ctx)
	}
	_, err = pb.local.Stat(ctx, d)
	held := err == nil
	if chain, ok := w.(*replicatingWriter); ok {
		copies, err := chain.commit(ctx, d, held)
		if err == nil {
			pb.hook.fire()
		}
		return copies, err
	}
	if held {
		return 1, w.Cancel(ctx)
	}
	if err := w.Commit(ctx, d); err != nil {
		return 0, err
	}
	pb.hook.fire()
	return 1, nil
}

// replica opens the replica of session id at state: heading a chain when
// forward names members (a new replica) or state is a chain's, else the
// upload here alone. A member without a placer to pass bytes on (not yet
// wired) keeps its own replica only; the sender learns it from the copies
// its Finish answers.
func (pb PeerBlobs) replica(ctx context.Context, id string, state []byte, forward []string) (storage.BlobWriter, error) {
	name, err := replicaUpload(id)
	if err != nil {
		return nil, err
	}
	local := func(state []byte) (storage.BlobWriter, error) { return pb.local.Writer(ctx, name, state) }
	st, chained := parseSessionState(state)
	p := pb.hook.placer()
	var rt ReplicaTransport
	if p != nil {
		rt, _ = p.deps.Transport.(ReplicaTransport)
	}
	var w *replicatingWriter
	switch {
	case rt != nil && state == nil && len(forward) > 0:
		w, err = p.newChainWriter(rt, local, id, forward)
	case rt != nil && chained:
		if w, err = p.resumeWriter(rt, local, id, st); err == nil {
			w.owners = true
		}
	case chained:
		return local(st.Local)
	default:
		return local(state)
	}
	if err != nil {
		return nil, err // not a nil *replicatingWriter in the interface
	}
	return w, nil
}
