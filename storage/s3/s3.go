// Package s3 is a content-addressed blob store in an S3-compatible bucket
// (AWS S3, MinIO, ...), through minio-go. Besides storage.BlobStore, a
// *Store is a BlobWalker, UsageReporter and UploadPurger, and has Check
// (readiness) and URLFor (presigned URLs for redirects, with
// Config.Redirect).
//
// An upload streams to S3 as a multipart upload while it is hashed (one pass
// over the bytes), up to four parts at a time; it holds the part filling
// and those being sent, in memory while the store's budget for them lasts
// and in spill files on local disk after that. Its State makes
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

	"github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// Store implements storage.BlobStore on a bucket. All methods may be called
// concurrently. It is composed of parts split by capability, each holding
// only what it uses (and all of them the bucket):
//
//   - blobs: the blobs at their keys (Stat, Open, Delete, Walk);
//   - writers: uploads as multipart uploads (Writer), over uploads, the
//     S3 calls of an upload's bookkeeping;
//   - purger: the leftovers of uploads (storage.UploadPurger);
//   - signer: presigned URLs (storage.URLSigner);
//   - foreignKeys: keys outside the store's layout, and adopting them as
//     blobs (registry2.Bucket, registry2.ObjectAdopter);
//   - records: named records (registry2.Recorder);
//   - tally: the blobs held and their bytes (storage.UsageReporter).
//
// The parts are embedded, so a *Store has every method and optional
// capability they have; capabilities_test.go lists them.
type Store struct {
	*bucket
	*tally
	*blobs
	*writers
	*purger
	*signer
	*foreignKeys
	*records
}

var (
	_ storage.BlobStore     = (*Store)(nil)
	_ storage.BlobWalker    = (*Store)(nil)
	_ storage.UsageReporter = (*Store)(nil)
	_ storage.UploadPurger  = (*Store)(nil)
	_ storage.URLSigner     = (*Store)(nil)
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
	bkt := &bucket{
		cfg:    cfg,
		client: client,
		core:   minio.Core{Client: client},
		keys:   newKeys(cfg.RootDirectory),
	}
	usage := &tally{}
	bs := &blobs{bucket: bkt, usage: usage, locks: newDigestLocks()}
	parts, err := newPartPool(cfg.PartSize, partMemory, cfg.SpillDir)
	if err != nil {
		return nil, err
	}
	up := &uploads{bucket: bkt, parts: parts}
	s := &Store{
		bucket:      bkt,
		tally:       usage,
		blobs:       bs,
		writers:     &writers{uploads: up, blobs: bs},
		purger:      &purger{uploads: up},
		signer:      &signer{bucket: bkt},
		foreignKeys: &foreignKeys{bucket: bkt, blobs: bs},
		records:     &records{bucket: bkt},
	}
	if err := bkt.ensureBucket(ctx); err != nil {
		return nil, err
	}
	err = s.Walk(ctx, func(_ digest.Digest, size int64) error {
		usage.count(1, size)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("s3 count blobs: %w", err)
	}
	return s, nil
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
