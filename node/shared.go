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
	localStore
	n *Node
}

func (s sharedBlobs) Open(ctx context.Context, d digest.Digest) (storage.Blob, error) {
	if s.n.cluster != nil {
		v := s.n.views.load()
		if owners := v.ring.Owners(d, 1); len(owners) == 1 && owners[0] != s.n.name {
			if _, err := s.localStore.Stat(ctx, d); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%s is served by %s: %w", d, owners[0], storage.ErrBlobUnknown)
		}
	}
	return s.n.readLocal(ctx, d)
}

// PurgeUploads implements storage.UploadPurger for a bucket that other
// members may share. Upload sessions are local to the member that started
// them, so the bytes of an upload named after another live member are its
// own janitor's to purge; those of members gone, of this one and of no
// member go here when keep does not keep them. Fills of the disk cache
// that a crash interrupted go too.
func (s sharedBlobs) PurgeUploads(ctx context.Context, cutoff time.Time, keep func(id string) bool) error {
	err := s.localStore.PurgeUploads(ctx, cutoff, func(id string) bool {
		return keep(id) || s.n.liveOther(uploadMember(id))
	})
	if s.n.cache != nil {
		err = errors.Join(err, s.n.cache.disk.PurgeUploads(ctx, cutoff, func(string) bool { return false }))
	}
	return err
}

// liveOther reports whether member is another live member of the cluster.
func (n *Node) liveOther(member string) bool {
	if n.cluster == nil || member == "" || member == n.name {
		return false
	}
	return n.views.load().live(member)
}

// readLocal opens blob d as this member holds it: through the disk cache
// when blobs live in a bucket.
func (n *Node) readLocal(ctx context.Context, d digest.Digest) (storage.Blob, error) {
	if n.cache != nil {
		return n.cache.Open(ctx, d)
	}
	return n.local.Open(ctx, d)
}
