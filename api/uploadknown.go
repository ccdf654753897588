package api

import (
	"context"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// KnownDigestWriter is the optional capability of a blob store that opens
// an upload whose digest is known before its first byte (a monolithic
// upload, POST ?digest=): in a cluster its bytes go straight to the blob's
// owners as they arrive, instead of to holders that rebalancing must move
// them from later.
type KnownDigestWriter interface {
	// WriterFor opens new upload id of blob d; the writer's Commit still
	// verifies d.
	WriterFor(ctx context.Context, id string, d digest.Digest) (storage.BlobWriter, error)
}

// writerFor opens new upload id of blob d, through the store's
// KnownDigestWriter when it has one.
func (h *uploadHandler) writerFor(ctx context.Context, id string, d digest.Digest) (storage.BlobWriter, error) {
	if kw, ok := h.blobs.(KnownDigestWriter); ok {
		return kw.WriterFor(ctx, id, d)
	}
	return h.blobs.Writer(ctx, id, nil)
}
