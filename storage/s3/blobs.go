package s3

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// blobs are the blobs at their keys (<root>/blobs/...): stat, read,
// delete, list, and the puts and copies that store them. Every change to
// a blob holds its digest's lock and keeps usage. All methods may be
// called concurrently.
type blobs struct {
	*bucket
	usage *tally
	locks *digestLocks
}

// Stat implements storage.BlobStore.
func (s *blobs) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	info, err := s.statBlob(ctx, d)
	return info.Size, err
}

func (s *blobs) statBlob(ctx context.Context, d digest.Digest) (minio.ObjectInfo, error) {
	if err := d.Validate(); err != nil {
		return minio.ObjectInfo{}, fmt.Errorf("%s: %w", d, storage.ErrBlobUnknown)
	}
	info, err := s.client.StatObject(ctx, s.cfg.Bucket, s.keys.blob(d), minio.StatObjectOptions{})
	if err != nil {
		return info, blobErr(d, err)
	}
	return info, nil
}

// Open implements storage.BlobStore. The blob reads lazily with ranged
// GETs: Seek costs nothing, and a read after a Seek fetches a bounded
// window first, so a small Range request does not download the object.
// Reads use ctx: once it is cancelled they fail, so a client that goes away
// or a stalled endpoint cannot hold a read.
func (s *blobs) Open(ctx context.Context, d digest.Digest) (storage.Blob, error) {
	info, err := s.statBlob(ctx, d)
	if err != nil {
		return nil, err
	}
	return &blob{
		bkt:  s.bucket,
		ctx:  ctx,
		d:    d,
		size: info.Size,
		mod:  info.LastModified,
	}, nil
}

// Delete implements storage.BlobStore.
func (s *blobs) Delete(ctx context.Context, d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%s: %w", d, storage.ErrBlobUnknown)
	}
	unlock, err := s.locks.lock(ctx, d)
	if err != nil {
		return err
	}
	defer unlock()
	size, err := s.Stat(ctx, d)
	if err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.cfg.Bucket, s.keys.blob(d), minio.RemoveObjectOptions{}); err != nil {
		return blobErr(d, err)
	}
	s.usage.count(-1, -size)
	return nil
}

// Walk implements storage.BlobWalker by listing <root>/blobs/.
func (s *blobs) Walk(ctx context.Context, fn func(d digest.Digest, size int64) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing if fn returns early
	opts := minio.ListObjectsOptions{Prefix: s.keys.blobs(), Recursive: true}
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, opts) {
		if obj.Err != nil {
			return wrap("s3 list blobs", obj.Err)
		}
		if d, ok := s.keys.parseBlob(obj.Key); ok {
			if err := fn(d, obj.Size); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// exists reports whether blob d is stored.
func (s *blobs) exists(ctx context.Context, d digest.Digest) (bool, error) {
	_, err := s.Stat(ctx, d)
	if errors.Is(err, storage.ErrBlobUnknown) {
		return false, nil
	}
	return err == nil, err
}

// putBlob stores b as blob d. The caller holds d's lock and counts it.
func (s *blobs) putBlob(ctx context.Context, d digest.Digest, b *partBuf) error {
	_, err := s.core.PutObject(ctx, s.cfg.Bucket, s.keys.blob(d), b.reader(), b.len(), "", "", putOptions(b.checksum()))
	return wrap("s3 store blob "+d.String(), err)
}

// copyToBlob copies the completed upload id to blob d. The caller holds
// d's lock and counts it.
func (s *blobs) copyToBlob(ctx context.Context, id string, d digest.Digest) error {
	dst := minio.CopyDestOptions{Bucket: s.cfg.Bucket, Object: s.keys.blob(d), PartSize: copyPartSize, NumThreads: copyThreads}
	src := minio.CopySrcOptions{Bucket: s.cfg.Bucket, Object: s.keys.uploadData(id)}
	if _, err := s.client.ComposeObject(ctx, dst, src); err != nil {
		return wrap("s3 store blob "+d.String(), err)
	}
	return nil
}

// digestLocks serialises the commits, adoptions and deletes of a digest in
// this process, so identical uploads finishing together store and count
// the blob once.
type digestLocks struct {
	mu         sync.Mutex
	committing map[digest.Digest]chan struct{} // closed when its holder unlocks
}

func newDigestLocks() *digestLocks {
	return &digestLocks{committing: map[digest.Digest]chan struct{}{}}
}

// lock waits until no one else holds d, or ctx ends.
func (l *digestLocks) lock(ctx context.Context, d digest.Digest) (unlock func(), err error) {
	for {
		l.mu.Lock()
		busy, ok := l.committing[d]
		if !ok {
			done := make(chan struct{})
			l.committing[d] = done
			l.mu.Unlock()
			return func() {
				l.mu.Lock()
				delete(l.committing, d)
				l.mu.Unlock()
				close(done)
			}, nil
		}
		l.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
