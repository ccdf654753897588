package placement

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// PeerBlobs serves other members' blob requests (peer.Blobs, and the
// replicas of their uploads, peer.Replicas: replicas.go) from member
// self's local store. Its methods may be called concurrently.
type PeerBlobs struct {
	self  string
	local LocalStore
	hook  *replicaHook
}

// NewPeerBlobs returns what member self serves to other members from its
// store local.
func NewPeerBlobs(self string, local LocalStore) PeerBlobs {
	return PeerBlobs{self: self, local: local, hook: &replicaHook{}}
}

// Has reports, for each digest in order, whether this member holds it.
func (pb PeerBlobs) Has(ctx context.Context, ds []digest.Digest) ([]bool, error) {
	out := make([]bool, len(ds))
	for i, d := range ds {
		_, err := pb.local.Stat(ctx, d)
		switch {
		case err == nil:
			out[i] = true
		case !errors.Is(err, storage.ErrBlobUnknown):
			return nil, err
		}
	}
	return out, nil
}

// Put stores a blob another member sends, verifying its size and digest:
// storage.ErrDigestMismatch if they do not match, and nothing is stored. A
// blob already held is not read again.
func (pb PeerBlobs) Put(ctx context.Context, d digest.Digest, size int64, r io.Reader) error {
	if _, err := pb.local.Stat(ctx, d); err == nil {
		return nil
	}
	w, err := pb.local.Writer(ctx, uploadID(pb.self), nil)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		_ = w.Cancel(ctx)
		return fmt.Errorf("receive %s: %w", d, err)
	}
	if w.Size() != size {
		_ = w.Cancel(ctx)
		return fmt.Errorf("receive %s: %d of %d bytes: %w", d, w.Size(), size, storage.ErrDigestMismatch)
	}
	return w.Commit(ctx, d)
}
