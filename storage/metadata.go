package storage

import (
	"context"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest is a stored manifest: its exact bytes and what the referrers API
// reports about it.
type Manifest struct {
	// Descriptor holds the media type, digest, size, artifact type and
	// annotations of the manifest, as listed by the referrers API.
	Descriptor v1.Descriptor `json:"descriptor"`
	// Subject is the digest of the manifest this one refers to, if any.
	Subject digest.Digest `json:"subject,omitempty"`
	// Content is the manifest exactly as pushed.
	Content []byte `json:"content"`
}

// Upload is a blob upload session.
type Upload struct {
	ID      string    `json:"id"`
	Repo    string    `json:"repo"`
	Started time.Time `json:"started"`
	// Updated is when the last chunk was received.
	Updated time.Time `json:"updated"`
	// Size is the number of bytes received so far.
	Size int64 `json:"size"`
	// State is the BlobWriter state to resume from.
	State []byte `json:"state,omitempty"`
}

// Metadata is the metadata store. Reads are served from memory; writes are
// durable when they return. All methods may be called concurrently.
type Metadata interface {
	Catalog
	Manifests
	Links
	Uploads
}

// Catalog lists repositories and their tags.
type Catalog interface {
	// Repositories returns up to n repository names sorted after last
	// (n <= 0: all).
	Repositories(last string, n int) []string
	// Tags returns up to n tags of repo sorted after last (n <= 0: all),
	// or ErrNameUnknown.
	Tags(repo, last string, n int) ([]string, error)
}

// Manifests stores manifests, tags and the referrers index.
type Manifests interface {
	// Manifest returns manifest d of repo, or ErrManifestUnknown.
	Manifest(repo string, d digest.Digest) (*Manifest, error)
	// Tag resolves a tag, or returns ErrTagUnknown.
	Tag(repo, tag string) (digest.Digest, error)
	// PutManifest links m into repo and, when tag is not empty, points
	// tag at it, in one durable step.
	PutManifest(ctx context.Context, repo string, m *Manifest, tag string) error
	// DeleteManifest unlinks manifest d from repo with every tag pointing
	// at it, or returns ErrManifestUnknown.
	DeleteManifest(ctx context.Context, repo string, d digest.Digest) error
	// DeleteTag removes a tag (not its manifest), or returns ErrTagUnknown.
	DeleteTag(ctx context.Context, repo, tag string) error
	// Referrers returns the descriptors of repo's manifests whose subject
	// is d, sorted by digest.
	Referrers(repo string, d digest.Digest) []v1.Descriptor
}

// Links records which repositories may serve which blobs.
type Links interface {
	// LinkBlob makes blob d, of size bytes (0: unknown), readable through
	// repo. The size travels with the link, for quotas.
	LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error
	// BlobLinked reports whether blob d is readable through repo.
	BlobLinked(repo string, d digest.Digest) bool
	// UnlinkBlob removes the link, or returns ErrBlobUnknown.
	UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error
}

// Uploads stores upload sessions.
type Uploads interface {
	// PutUpload creates or updates a session.
	PutUpload(ctx context.Context, u *Upload) error
	// Upload returns a session, or ErrUploadUnknown.
	Upload(id string) (*Upload, error)
	// ListUploads returns every session.
	ListUploads() ([]*Upload, error)
	// DeleteUpload removes a session, or returns ErrUploadUnknown.
	DeleteUpload(ctx context.Context, id string) error
	// CompleteUpload removes session id and links blob d, of size bytes,
	// into its repository, in one durable step that also records the
	// session as finished.
	CompleteUpload(ctx context.Context, id string, d digest.Digest, size int64) error
	// FinishedUpload returns what session id completed as, from
	// CompleteUpload until ForgetFinishedUploads, or ErrUploadUnknown.
	FinishedUpload(id string) (FinishedUpload, error)
	// ForgetFinishedUploads drops the records of the sessions that
	// completed before cutoff.
	ForgetFinishedUploads(ctx context.Context, cutoff time.Time) error
}

// FinishedUpload is what an upload session completed as: a retried final
// PUT of it is answered from this (the PUT is idempotent).
type FinishedUpload struct {
	Repo   string        `json:"repo"`
	Digest digest.Digest `json:"digest"`
	At     time.Time     `json:"at"`
}

// Inventory is an optional Metadata capability for garbage collection:
// walking everything the metadata references.
type Inventory interface {
	// EachManifest calls fn for every manifest linked in any repository,
	// until fn returns false. fn must not call the store.
	EachManifest(fn func(repo string, m *Manifest) bool)
	// BlobRepos returns the repositories linking blob d.
	BlobRepos(d digest.Digest) []string
	// UnlinkEverywhere removes every repository's link to blobs ds, in
	// one durable step.
	UnlinkEverywhere(ctx context.Context, ds []digest.Digest) error
	// Written returns when a tag (tag != "") or a manifest link (tag ==
	// "") of repo was last written; ok is false when it does not exist.
	Written(repo, tag string, d digest.Digest) (at time.Time, ok bool)
}
