package api

import (
	"net/http"

	"github.com/atollhq/atoll/storage"
)

// tagHandler lists a repository's tags. Its methods may be called
// concurrently.
type tagHandler struct {
	catalog storage.Catalog
}

// tags implements GET /v2/<name>/tags/list ("Listing tags") with n/last
// pagination.
func (h tagHandler) tags(w http.ResponseWriter, r *http.Request) error {
	repo, err := repoName(r)
	if err != nil {
		return err
	}
	n, last, err := pagination(r)
	if err != nil {
		return err
	}
	tags, err := h.catalog.Tags(repo, last, n+1)
	if err != nil {
		return err
	}
	tags = page(w, r.URL.Path, tags, n)
	return writeJSON(w, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{repo, tags})
}
