package api

import (
	"context"
	"fmt"
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

// checkWritable refuses writes to the pull-through cache repositories of up.
func checkWritable(up Upstream, repo string) error {
	if up.Proxied(repo) {
		return errProxiedReadOnly
	}
	return nil
}

// noUpstream is the Upstream of a registry without pull-through caches:
// every repository is local.
type noUpstream struct{}

func (noUpstream) Proxied(string) bool { return false }

func (noUpstream) Manifest(_ context.Context, repo string, _ oci.Reference) (*storage.Manifest, error) {
	return nil, fmt.Errorf("%s is not a pull-through cache: %w", repo, storage.ErrManifestUnknown)
}

func (noUpstream) Blob(_ context.Context, repo string, _ digest.Digest) error {
	return fmt.Errorf("%s is not a pull-through cache: %w", repo, storage.ErrBlobUnknown)
}
