package api

import (
	"context"
	"net/http"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/oci"
	"github.com/atollhq/atoll/storage"
)

// Upstream makes some repositories pull-through caches of another
// registry. Methods may be called concurrently.
type Upstream interface {
	// Proxied reports whether repo is a cache of an upstream registry.
	// Proxied repositories refuse pushes and deletes.
	Proxied(repo string) bool
	// Manifest resolves ref in proxied repo: from the upstream (storing
	// the manifest and its tag locally), or from the local copy when it is
	// fresh or the upstream is unreachable. It returns
	// storage.ErrManifestUnknown or storage.ErrTagUnknown when neither has it.
	Manifest(ctx context.Context, repo string, ref oci.Reference) (*storage.Manifest, error)
	// Blob fetches blob d of proxied repo from the upstream into the local
	// store and links it into repo, or returns storage.ErrBlobUnknown.
	Blob(ctx context.Context, repo string, d digest.Digest) error
}

var errProxiedReadOnly = newError(http.StatusMethodNotAllowed, codeUnsupported,
	"this repository is a pull-through cache: it accepts no pushes or deletes")

// checkWritable refuses writes to pull-through cache repositories.
func (reg *Registry) checkWritable(repo string) error {
	if reg.upstream != nil && reg.upstream.Proxied(repo) {
		return errProxiedReadOnly
	}
	return nil
}
