package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/oci"
	"github.com/atollhq/atoll/storage"
)

// mounter links blobs that are already stored into another repository
// (a cross-repository mount). Its methods may be called concurrently.
type mounter struct {
	blobs  storage.BlobStore
	links  storage.Links
	claims Claims
	policy Policy
	// noAnonymous answers a mount without ?from= with an upload session
	// (Config.NoAnonymousMount).
	noAnonymous bool
}

// mount links blob mount of repository from into repo, if from links it
// (anonymous: if any repository does, or this member holds it). It returns
// "" when it cannot, and the client then gets an upload session as the
// spec says. A link means the blob was committed; in a cluster it may live
// on other members.
func (m *mounter) mount(ctx context.Context, repo, mount, from string, hasFrom bool) (digest.Digest, error) {
	d, err := parseDigest(mount)
	if err != nil {
		return "", err
	}
	switch {
	case hasFrom && !oci.ValidName(from):
		return "", newError(http.StatusBadRequest, codeNameInvalid, "invalid repository name %q", truncate(from))
	case hasFrom && !m.links.BlobLinked(from, d), !hasFrom && m.noAnonymous:
		return "", nil
	case !hasFrom && !m.linkedAnywhere(d):
		if _, err := m.blobs.Stat(ctx, d); err != nil {
			if errors.Is(err, storage.ErrBlobUnknown) {
				return "", nil
			}
			return "", err
		}
	}
	missing, done, err := m.claims.Store(ctx, repo, d)
	if err != nil || missing {
		if err == nil {
			done(false)
		}
		return "", err // collected meanwhile: upload it
	}
	size, err := m.blobSize(ctx, d)
	if err != nil {
		size = 0 // on another member only: linked without a size
	}
	release, err := m.policy.AllowBlob(ctx, repo, d, size)
	if err != nil {
		done(false)
		return "", err
	}
	defer release()
	if err := m.links.LinkBlob(ctx, repo, d, size); err != nil {
		done(false)
		return "", err
	}
	done(true)
	return d, nil
}

// linkedAnywhere reports whether some repository links blob d.
func (m *mounter) linkedAnywhere(d digest.Digest) bool {
	inv, ok := m.links.(storage.Inventory)
	return ok && len(inv.BlobRepos(d)) > 0
}

// blobSizes is an optional Metadata capability: the size of a blob from
// its links, without reaching the bytes (which may be on other members).
type blobSizes interface {
	BlobSize(d digest.Digest) (int64, bool)
}

// blobSize returns the size of blob d, known from its links or its bytes.
func (m *mounter) blobSize(ctx context.Context, d digest.Digest) (int64, error) {
	if sl, ok := m.links.(blobSizes); ok {
		if size, ok := sl.BlobSize(d); ok {
			return size, nil
		}
	}
	return m.blobs.Stat(ctx, d)
}
