package placement

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
	LocalStore
	p *Placer
}

func (s sharedBlobs) Open(ctx context.Context, d digest.Digest) (storage.Blob, error) {
	if s.p.clustered() {
		if owners := s.p.deps.Members.Ring().Owners(d, 1); len(owners) == 1 && owners[0] != s.p.deps.Self {
			if _, err := s.LocalStore.Stat(ctx, d); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%s is served by %s: %w", d, owners[0], storage.ErrBlobUnknown)
		}
	}
	return s.p.ReadLocal(ctx, d)
}

// PurgeUploads implements storage.UploadPurger for a bucket that other
// members may share. Upload sessions are local to the member that started
// them, so the bytes of an upload named after another live member are its
// own janitor's to purge; those of members gone, of this one and of no
// member go here when keep does not keep them. Fills of the disk cache
// that a crash interrupted go too.
func (s sharedBlobs) PurgeUploads(ctx context.Context, cutoff time.Time, keep func(id string) bool) error {
	err := s.LocalStore.PurgeUploads(ctx, cutoff, func(id string) bool {
		return keep(id) || s.p.liveOther(s.p.deps.UploadMember(id))
	})
	if c := s.p.deps.Cache; c != nil {
		err = errors.Join(err, c.purgeFills(ctx, cutoff))
	}
	return err
}
