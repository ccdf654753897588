package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// Members on one shared bucket keep a single copy of each blob: the bucket
// provides durability. The ring then only decides which member serves and
// caches each blob, so a hot layer is fetched from the bucket once per
// owner rather than once per request.

// sharedBlobs is the blob store the registry sees when blobs live in a
// shared bucket. Reads of blobs another live member owns report
// ErrBlobUnknown, which makes the registry route them to that member
// (api.Remote); the owner reads through its disk cache.
type sharedBlobs struct {
	storage.BlobStore
	n *Node
}

func (s sharedBlobs) Open(ctx context.Context, d digest.Digest) (storage.Blob, error) {
	if s.n.cluster != nil {
		v := s.n.views.load()
		if owners := v.ring.Owners(d, 1); len(owners) == 1 && owners[0] != s.n.name {
			if _, err := s.BlobStore.Stat(ctx, d); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%s is served by %s: %w", d, owners[0], storage.ErrBlobUnknown)
		}
	}
	return s.n.readLocal(ctx, d)
}

// URLFor passes presigned-URL redirects through when the bucket offers them.
func (s sharedBlobs) URLFor(ctx context.Context, d digest.Digest, expiry time.Duration) (string, error) {
	if u, ok := s.BlobStore.(storage.URLSigner); ok {
		return u.URLFor(ctx, d, expiry)
	}
	return "", fmt.Errorf("presigned URLs: %w", errors.ErrUnsupported)
}

// readLocal opens blob d as this member holds it: through the disk cache
// when blobs live in a bucket.
func (n *Node) readLocal(ctx context.Context, d digest.Digest) (storage.Blob, error) {
	if n.cache != nil {
		return n.cache.Open(ctx, d)
	}
	return n.local.Open(ctx, d)
}
