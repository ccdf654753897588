package api

import (
	"context"
	"errors"

	"github.com/opencontainers/go-digest"
)

// Errors a Policy returns, wrapped with what the client should read (the
// quota, its usage and its limit; the tag and its digest). errors.go maps
// them to 403 DENIED.
var (
	// ErrQuotaExceeded: the write would take a quota past its limit.
	ErrQuotaExceeded = errors.New("quota exceeded")
	// ErrTagImmutable: the write would move or delete an immutable tag.
	ErrTagImmutable = errors.New("tag is immutable")
	// ErrReadOnly: the registry is in read-only maintenance mode.
	ErrReadOnly = errors.New("the registry is in read-only mode for maintenance; reads are served, writes are refused")
)

// Policy enforces the operator's rules on writes: quotas and immutable
// tags. The registry asks it inside the garbage-collection hold, after its
// own checks and before it stores anything; a refusal stores nothing.
// Methods may be called concurrently.
type Policy interface {
	// AllowBlob is asked before blob d, size bytes, is linked into repo
	// by an upload or a mount. When it allows, release is called once
	// the link is stored or has failed.
	AllowBlob(ctx context.Context, repo string, d digest.Digest, size int64) (release func(), err error)
	// AllowManifest is asked before manifest d, size bytes, is stored in
	// repo and, when tag is not "", tag is pointed at it. release is as
	// for AllowBlob.
	AllowManifest(ctx context.Context, repo, tag string, d digest.Digest, size int64) (release func(), err error)
	// AllowDelete is asked before tag of repo (or, when tag is "",
	// manifest d with its tags) is deleted.
	AllowDelete(ctx context.Context, repo, tag string, d digest.Digest) error
}

// allowAll is the policy of a registry without rules.
type allowAll struct{}

func (allowAll) AllowBlob(context.Context, string, digest.Digest, int64) (func(), error) {
	return func() {}, nil
}

func (allowAll) AllowManifest(context.Context, string, string, digest.Digest, int64) (func(), error) {
	return func() {}, nil
}

func (allowAll) AllowDelete(context.Context, string, string, digest.Digest) error { return nil }
