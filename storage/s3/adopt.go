package s3

import (
	"context"
	"fmt"
	"io"
	"io/fs"

	"github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// maxCopyObject is the largest object one server-side CopyObject may copy
// (S3's limit); larger ones are composed from copied parts.
const maxCopyObject = 5 << 30

// foreignKeys reaches keys of the bucket outside the store's layout,
// relative to the root directory: another program's tree kept next to the
// store (registry:2's docker/registry/v2 under the same rootdirectory),
// read so that its blobs can be adopted by a server-side copy. A key that
// does not exist is an error wrapping fs.ErrNotExist. Its methods may be
// called concurrently.
type foreignKeys struct {
	*bucket
	blobs *blobs // where AdoptObject puts what it adopts
}

// WalkKeys calls fn with every key under prefix (relative to the root
// directory, and so is the key fn gets), in lexical order, and its size.
// fn's error stops the walk and is returned.
func (s *foreignKeys) WalkKeys(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing if fn returns early
	opts := minio.ListObjectsOptions{Prefix: s.keys.foreign(prefix), Recursive: true}
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, opts) {
		if obj.Err != nil {
			return wrap("s3 list "+prefix, obj.Err)
		}
		if err := fn(obj.Key[len(s.keys.root):], obj.Size); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// StatKey returns the size of the object at key.
func (s *foreignKeys) StatKey(ctx context.Context, key string) (int64, error) {
	info, err := s.client.StatObject(ctx, s.cfg.Bucket, s.keys.foreign(key), minio.StatObjectOptions{})
	if err != nil {
		return 0, keyErr(key, err)
	}
	return info.Size, nil
}

// OpenKey reads the object at key.
func (s *foreignKeys) OpenKey(ctx context.Context, key string) (io.ReadCloser, error) {
	body, _, _, err := s.core.GetObject(ctx, s.cfg.Bucket, s.keys.foreign(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, keyErr(key, err)
	}
	return body, nil
}

// AdoptObject makes the object at key blob d by a server-side copy: the
// bytes do not pass through this process, and the object stays where it
// is. Objects over 5 GiB are composed from copied parts. The caller vouches
// for the content; size is the object's. A blob already held is left as
// it is. The copy is atomic for objects up to 5 GiB; a larger copy cut off
// by a crash leaves a multipart upload at the blob's key and no blob, and
// adopting again starts over.
func (s *foreignKeys) AdoptObject(ctx context.Context, d digest.Digest, key string, size int64) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%s: %w", d, storage.ErrBlobUnknown)
	}
	unlock, err := s.blobs.locks.lock(ctx, d)
	if err != nil {
		return err
	}
	defer unlock()
	if held, err := s.blobs.exists(ctx, d); err != nil || held {
		return err
	}
	dst := minio.CopyDestOptions{Bucket: s.cfg.Bucket, Object: s.keys.blob(d)}
	src := minio.CopySrcOptions{Bucket: s.cfg.Bucket, Object: s.keys.foreign(key)}
	if size <= maxCopyObject {
		_, err = s.client.CopyObject(ctx, dst, src)
	} else {
		dst.PartSize, dst.NumThreads = copyPartSize, copyThreads
		_, err = s.client.ComposeObject(ctx, dst, src)
	}
	if err != nil {
		return keyErr(key, err)
	}
	s.blobs.usage.count(1, size)
	return nil
}

// keyErr maps a missing object to fs.ErrNotExist.
func keyErr(key string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("s3 %s: %w", key, fs.ErrNotExist)
	}
	return wrap("s3 "+key, err)
}
