package api

import (
	"net/http"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/oci"
)

// referrerIndex finds the manifests whose subject is a given manifest.
type referrerIndex interface {
	// Referrers returns the descriptors of repo's manifests whose subject
	// is d, sorted by digest.
	Referrers(repo string, d digest.Digest) []v1.Descriptor
}

// referrerHandler lists referrers. Its methods may be called concurrently.
type referrerHandler struct {
	index referrerIndex
}

// referrers implements GET /v2/<name>/referrers/<digest> ("Listing
// referrers"): an image index of the manifests whose subject is digest,
// filtered by ?artifactType=; empty when there are none.
func (h referrerHandler) referrers(w http.ResponseWriter, r *http.Request) error {
	repo, d, err := repoAndDigest(r)
	if err != nil {
		return err
	}
	descs := h.index.Referrers(repo, d)
	if at := r.URL.Query().Get("artifactType"); at != "" {
		kept := descs[:0]
		for _, desc := range descs {
			if desc.ArtifactType == at {
				kept = append(kept, desc)
			}
		}
		descs = kept
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	if descs == nil {
		descs = []v1.Descriptor{}
	}
	return writeJSON(w, oci.MediaTypeImageIndex, v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: oci.MediaTypeImageIndex,
		Manifests: descs,
	})
}
