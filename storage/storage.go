// Package storage declares the local data of one registry node: a
// content-addressed blob store and the metadata store (repositories, tags,
// manifests, blob links, referrers, upload sessions). Implementations live in
// sibling packages named after where the data lives: filesystem (blobs on a
// local disk) and metadb (metadata in an embedded bbolt database).
//
// Storage knows nothing of HTTP or of the cluster. It returns the domain
// errors below, wrapped with %w; only the HTTP edge maps them to OCI codes.
package storage

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

// Domain errors. Test for them with errors.Is.
var (
	ErrBlobUnknown     = errors.New("blob unknown")
	ErrDigestMismatch  = errors.New("digest does not match content")
	ErrUploadUnknown   = errors.New("upload unknown")
	ErrManifestUnknown = errors.New("manifest unknown")
	ErrNameUnknown     = errors.New("repository name unknown")
	ErrTagUnknown      = errors.New("tag unknown")
	ErrUnavailable     = errors.New("storage unavailable")
	// ErrNoSpace: a write failed because the disk (or the user's quota)
	// is full. It is the registry's condition, never the client's fault.
	ErrNoSpace = errors.New("no space left on the registry's storage")
)

// BlobStore holds blob bytes addressed by digest. All methods may be called
// concurrently.
type BlobStore interface {
	// Stat returns the size of blob d, or ErrBlobUnknown.
	Stat(ctx context.Context, d digest.Digest) (int64, error)
	// Open returns the blob for reading, or ErrBlobUnknown. The caller
	// closes it.
	Open(ctx context.Context, d digest.Digest) (Blob, error)
	// Delete removes blob d, or returns ErrBlobUnknown.
	Delete(ctx context.Context, d digest.Digest) error
	// Writer opens upload id for appending. state is what a previous
	// writer's State returned, or nil to start a new upload. Data written
	// after the last State call may be discarded by a crash.
	Writer(ctx context.Context, id string, state []byte) (BlobWriter, error)
}

// Blob is an open blob. Read and Seek follow io.ReadSeeker, so a local blob
// can be served with http.ServeContent.
type Blob interface {
	io.ReadSeekCloser
	Size() int64
	ModTime() time.Time
}

// BlobWriter receives the bytes of one upload. Writes are two-phase: the
// upload becomes a blob only on Commit; Cancel discards it. A writer is used
// by one goroutine at a time.
type BlobWriter interface {
	io.Writer
	// Size is the number of bytes written so far, across all writers of
	// this upload.
	Size() int64
	// State makes the bytes written so far durable and returns an opaque
	// value from which Writer resumes the upload.
	State() ([]byte, error)
	// Commit verifies that the content has digest d and stores it as blob
	// d. On ErrDigestMismatch nothing is stored and the upload is gone.
	Commit(ctx context.Context, d digest.Digest) error
	// Cancel discards the upload.
	Cancel(ctx context.Context) error
	// Close releases the writer and keeps the upload for a later Writer.
	Close() error
}

// BlobWalker is an optional BlobStore capability: visiting every blob. A
// blob deleted during the walk may or may not be visited; it never fails
// the walk.
type BlobWalker interface {
	Walk(ctx context.Context, fn func(d digest.Digest, size int64) error) error
}

// UploadPurger is an optional BlobStore capability: removing the bytes of
// uploads that are not kept and were last written before cutoff (left by a
// crash between creating an upload and recording its session).
type UploadPurger interface {
	PurgeUploads(ctx context.Context, cutoff time.Time, keep func(id string) bool) error
}

// UsageReporter is an optional BlobStore capability: how many blobs it
// holds and their total size.
type UsageReporter interface {
	Usage() (blobs, bytes int64)
}

// URLSigner is an optional BlobStore capability: a URL from which a client
// can fetch blob d directly for a while (an S3 presigned URL). It returns
// an error wrapping errors.ErrUnsupported when redirects are off.
type URLSigner interface {
	URLFor(ctx context.Context, d digest.Digest, expiry time.Duration) (string, error)
}
