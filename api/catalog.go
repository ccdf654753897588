package api

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/oci"
)

// catalog implements GET /v2/_catalog with n/last pagination and a Link
// header to the next page.
func (reg *Registry) catalog(w http.ResponseWriter, r *http.Request) error {
	n, last, err := pagination(r)
	if err != nil {
		return err
	}
	if most := reg.cfg.CatalogMaxEntries; most > 0 {
		if n > most {
			e := newError(http.StatusBadRequest, codePaginationInvalid, "n %d is over catalog.maxentries (%d)", n, most)
			e.Detail = map[string]int{"n": n}
			return e
		}
		if n < 0 {
			n = most
		}
	}
	// Names come in chunks, not all of them per page: a registry holds
	// a hundred thousand repositories.
	chunk := 0 // n < 0: every name at once
	if n >= 0 {
		chunk = max(n+1, 1000)
	}
	visible := []string{}
	for from := last; n < 0 || len(visible) <= n; {
		names := reg.meta.Repositories(from, chunk)
		for _, name := range names {
			if reg.visible(r, name) {
				visible = append(visible, name)
			}
		}
		if chunk == 0 || len(names) < chunk {
			break
		}
		from = names[len(names)-1]
	}
	repos := page(w, r.URL.Path, visible, n)
	return writeJSON(w, "application/json", map[string][]string{"repositories": repos})
}

// tags implements GET /v2/<name>/tags/list ("Listing tags") with n/last
// pagination.
func (reg *Registry) tags(w http.ResponseWriter, r *http.Request) error {
	repo, err := repoName(r)
	if err != nil {
		return err
	}
	n, last, err := pagination(r)
	if err != nil {
		return err
	}
	tags, err := reg.meta.Tags(repo, last, n+1)
	if err != nil {
		return err
	}
	tags = page(w, r.URL.Path, tags, n)
	return writeJSON(w, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{repo, tags})
}

// referrers implements GET /v2/<name>/referrers/<digest> ("Listing
// referrers"): an image index of the manifests whose subject is digest,
// filtered by ?artifactType=; empty when there are none.
func (reg *Registry) referrers(w http.ResponseWriter, r *http.Request) error {
	repo, err := repoName(r)
	if err != nil {
		return err
	}
	d, err := pathDigest(r, "digest")
	if err != nil {
		return err
	}
	descs := reg.meta.Referrers(repo, d)
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

func writeJSON(w http.ResponseWriter, contentType string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, err = w.Write(body)
	return err
}
