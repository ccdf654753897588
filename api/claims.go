package api

import (
	"context"

	"github.com/opencontainers/go-digest"
)

// Claims is told what clients learn of blobs and which writes use them,
// so that a garbage collection running meanwhile deletes none of them.
// Methods may be called concurrently.
type Claims interface {
	// Told records that a client is about to be told blob d exists in
	// repo (HEAD 200). It reports false when d is being collected: the
	// client is then told d does not exist.
	Told(repo string, d digest.Digest) bool
	// Store holds blob d while an upload's commit or a mount into repo
	// writes it, waiting while a collection deletes it. missing reports
	// that a collection deleted d and no member holds it. done(true),
	// once the client is answered 201, counts as telling the client.
	Store(ctx context.Context, repo string, d digest.Digest) (missing bool, done func(acked bool), err error)
	// Reference holds blobs ds while a manifest referencing them is
	// stored in repo, waiting while a collection deletes one of them; it
	// returns those a collection deleted that no member holds. done(true)
	// follows a stored manifest.
	Reference(ctx context.Context, repo string, ds []digest.Digest) (missing []digest.Digest, done func(acked bool), err error)
}

// noClaims is the Claims of a registry that nothing collects concurrently.
type noClaims struct{}

func (noClaims) Told(string, digest.Digest) bool { return true }

func (noClaims) Store(context.Context, string, digest.Digest) (bool, func(bool), error) {
	return false, func(bool) {}, nil
}

func (noClaims) Reference(context.Context, string, []digest.Digest) ([]digest.Digest, func(bool), error) {
	return nil, func(bool) {}, nil
}
