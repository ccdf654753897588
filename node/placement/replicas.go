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

// replicaPrefix names the upload that holds a replica of another member's
// session.
const replicaPrefix = "replica-"

// replicaHook is how the placer of this member hears of the blobs
// replicas became: it rebalances, so a copy on a member the ring does not
// name moves to the blob's owners. Shared by the copies of a PeerBlobs.
type replicaHook struct {
	mu     sync.Mutex
	placed func()
}

func (h *replicaHook) set(fn func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.placed = fn
}

func (h *replicaHook) fire() {
	h.mu.Lock()
	fn := h.placed
	h.mu.Unlock()
	if fn != nil {
		fn()
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
// replica of session id, resumed from state, and returns the state after
// those bytes, durable. If r fails the replica stays as it was at state.
func (pb PeerBlobs) AppendReplica(ctx context.Context, id string, state []byte, r io.Reader) ([]byte, int64, error) {
	name, err := replicaUpload(id)
	if err != nil {
		return nil, 0, err
	}
	w, err := pb.local.Writer(ctx, name, state)
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
// d is "". A blob already held is kept and the replica dropped.
func (pb PeerBlobs) FinishReplica(ctx context.Context, id string, state []byte, d digest.Digest) error {
	name, err := replicaUpload(id)
	if err != nil {
		return err
	}
	w, err := pb.local.Writer(ctx, name, state)
	if err != nil {
		return err
	}
	if d == "" {
		return w.Cancel(ctx)
	}
	if _, err := pb.local.Stat(ctx, d); err == nil {
		return w.Cancel(ctx)
	}
	if err := w.Commit(ctx, d); err != nil {
		return err
	}
	pb.hook.fire()
	return nil
}
