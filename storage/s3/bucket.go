package s3

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/minio/minio-go/v7"
)

// bucket is what every part of a Store shares: the configuration, the
// client, and the layout of keys under the root directory (see keys). It
// is immutable after New.
type bucket struct {
	cfg    Config
	client *minio.Client
	core   minio.Core // the same client, for the multipart calls
	keys   keys
}

func (b *bucket) ensureBucket(ctx context.Context) error {
	ok, err := b.client.BucketExists(ctx, b.cfg.Bucket)
	if err != nil {
		return wrap("s3 bucket "+b.cfg.Bucket, err)
	}
	if ok {
		return nil
	}
	err = b.client.MakeBucket(ctx, b.cfg.Bucket, minio.MakeBucketOptions{Region: b.cfg.Region})
	if code := minio.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
		return nil // another member made it first
	}
	return wrap("s3 create bucket "+b.cfg.Bucket, err)
}

func (b *bucket) getObject(ctx context.Context, key string) (io.ReadCloser, error) {
	body, _, _, err := b.core.GetObject(ctx, b.cfg.Bucket, key, minio.GetObjectOptions{})
	return body, err
}

// tally counts the blobs held and their total size. Its methods may be
// called concurrently.
type tally struct {
	blobs atomic.Int64 // blobs held, counted at New and kept by this process
	bytes atomic.Int64 // their total size
}

// Usage implements storage.UsageReporter: the blobs counted at New, plus
// those this process committed or adopted, less those it deleted. Members
// sharing a bucket each see only their own changes until they restart.
func (t *tally) Usage() (blobs, bytes int64) { return t.blobs.Load(), t.bytes.Load() }

func (t *tally) count(blobs, bytes int64) {
	t.blobs.Add(blobs)
	t.bytes.Add(bytes)
}
