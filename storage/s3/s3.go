// Package s3 is a content-addressed blob store in an S3-compatible bucket
// (AWS S3, MinIO, ...), through minio-go. Besides storage.BlobStore, a
// *Store is a BlobWalker, UsageReporter and UploadPurger, and has Check
// (readiness) and URLFor (presigned URLs for redirects, with
// Config.Redirect).
//
// An upload streams to S3 as a multipart upload while it is hashed (one pass
// over the bytes); at most two parts of it are in memory. Its State makes
// what was written durable: the parts so far, and the bytes after them as a
// small "tail" object. Commit verifies the digest, completes the multipart
// upload and copies it to the blob's key; blobs smaller than a part are put
// directly at their key. The layout of the bucket is documented on keys.
//
// Errors: the domain errors of package storage, wrapped; any failure to reach
// S3 (refused connection, timeout, 5xx) wraps storage.ErrUnavailable.
package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// Store implements storage.BlobStore on a bucket. All methods may be called
// concurrently.
type Store struct {
	cfg    Config
	client *minio.Client
	core   minio.Core // the same client, for the multipart calls
	keys   keys

	blobs atomic.Int64 // blobs held, counted at New and kept by this process
	bytes atomic.Int64 // their total size

	parts sync.Pool // *[]byte of cap PartSize

	mu         sync.Mutex
	committing map[digest.Digest]chan struct{} // see lockDigest
}

var (
	_ storage.BlobStore     = (*Store)(nil)
	_ storage.BlobWalker    = (*Store)(nil)
	_ storage.UsageReporter = (*Store)(nil)
	_ storage.UploadPurger  = (*Store)(nil)
)

// New returns a store on cfg.Bucket, creating the bucket if it is missing,
// and counts the blobs already there (a listing of <root>/blobs/).
func New(ctx context.Context, cfg Config) (*Store, error) {
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	client, err := cfg.newClient()
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:        cfg,
		client:     client,
		core:       minio.Core{Client: client},
		keys:       newKeys(cfg.RootDirectory),
		committing: map[digest.Digest]chan struct{}{},
	}
	s.parts.New = func() any { b := make([]byte, 0, cfg.PartSize); return &b }
	if err := s.ensureBucket(ctx); err != nil {
		return nil, err
	}
	err = s.Walk(ctx, func(_ digest.Digest, size int64) error {
		s.count(1, size)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("s3 count blobs: %w", err)
	}
	return s, nil
}

func (s *Store) ensureBucket(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return wrap("s3 bucket "+s.cfg.Bucket, err)
	}
	if ok {
		return nil
	}
	err = s.client.MakeBucket(ctx, s.cfg.Bucket, minio.MakeBucketOptions{Region: s.cfg.Region})
	if code := minio.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
		return nil // another member made it first
	}
	return wrap("s3 create bucket "+s.cfg.Bucket, err)
}

// Usage implements storage.UsageReporter: the blobs counted at New, plus
// those this process committed, less those it deleted. Members sharing a
// bucket each see only their own changes until they restart.
func (s *Store) Usage() (blobs, bytes int64) { return s.blobs.Load(), s.bytes.Load() }

func (s *Store) count(blobs, bytes int64) {
	s.blobs.Add(blobs)
	s.bytes.Add(bytes)
}

// Stat implements storage.BlobStore.
func (s *Store) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	info, err := s.statBlob(ctx, d)
	return info.Size, err
}

func (s *Store) statBlob(ctx context.Context, d digest.Digest) (minio.ObjectInfo, error) {
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
func (s *Store) Open(ctx context.Context, d digest.Digest) (storage.Blob, error) {
	info, err := s.statBlob(ctx, d)
	if err != nil {
		return nil, err
	}
	return &blob{
		s:    s,
		ctx:  ctx,
		d:    d,
		size: info.Size,
		mod:  info.LastModified,
	}, nil
}

// Delete implements storage.BlobStore.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%s: %w", d, storage.ErrBlobUnknown)
	}
	unlock, err := s.lockDigest(ctx, d)
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
	s.count(-1, -size)
	return nil
}

// Walk implements storage.BlobWalker by listing <root>/blobs/.
func (s *Store) Walk(ctx context.Context, fn func(d digest.Digest, size int64) error) error {
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

// Check reports whether the bucket is reachable and accepts writes, for
// readiness probes.
func (s *Store) Check(ctx context.Context) error {
	key := s.keys.check(randomHex())
	if _, err := s.core.PutObject(ctx, s.cfg.Bucket, key, strings.NewReader("ok"), 2, "", "", minio.PutObjectOptions{}); err != nil {
		return wrap("s3 bucket not writable", err)
	}
	if err := s.client.RemoveObject(ctx, s.cfg.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return wrap("s3 bucket not writable", err)
	}
	return nil
}

// URLFor returns a presigned URL from which blob d can be fetched for
// expiry: an optional capability, for serving blob GETs by redirect. It does
// not check that the blob exists (callers Stat it first). Without
// Config.Redirect it returns an error wrapping errors.ErrUnsupported, and
// callers stream the blob instead.
func (s *Store) URLFor(ctx context.Context, d digest.Digest, expiry time.Duration) (string, error) {
	if !s.cfg.Redirect {
		return "", fmt.Errorf("s3 redirect disabled: %w", errors.ErrUnsupported)
	}
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("%s: %w", d, storage.ErrBlobUnknown)
	}
	u, err := s.client.PresignedGetObject(ctx, s.cfg.Bucket, s.keys.blob(d), expiry, nil)
	if err != nil {
		return "", wrap("s3 presign "+d.String(), err)
	}
	return u.String(), nil
}

// lockDigest serialises the commits and deletes of d in this process, so
// identical uploads finishing together store and count the blob once.
func (s *Store) lockDigest(ctx context.Context, d digest.Digest) (unlock func(), err error) {
	for {
		s.mu.Lock()
		busy, ok := s.committing[d]
		if !ok {
			done := make(chan struct{})
			s.committing[d] = done
			s.mu.Unlock()
			return func() {
				s.mu.Lock()
				delete(s.committing, d)
				s.mu.Unlock()
				close(done)
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// blobErr maps a missing object to ErrBlobUnknown.
func blobErr(d digest.Digest, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("%s: %w", d, storage.ErrBlobUnknown)
	}
	return wrap("s3 blob "+d.String(), err)
}

func isNotFound(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return code == minio.NoSuchKey || code == "NoSuchUpload"
}

// wrap adds context to err, and storage.ErrUnavailable when S3 could not be
// reached or failed on its side.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	if unavailable(err) {
		return fmt.Errorf("%s: %w: %w", what, storage.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func unavailable(err error) bool {
	var netErr net.Error
	switch {
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, context.Canceled):
		return false // wrapped already, or the caller gave up
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return true
	}
	r := minio.ToErrorResponse(err)
	switch r.Code {
	case "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "XMinioServerNotInitialized":
		return true
	}
	return r.StatusCode >= 500
}

func randomHex() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
