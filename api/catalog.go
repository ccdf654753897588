package api

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/atollhq/atoll/storage"
)

// catalogHandler lists the repositories: GET /v2/_catalog and the v1
// search. Its methods may be called concurrently.
type catalogHandler struct {
	repos storage.Catalog
	// visible reports whether the requester may see repository repo.
	visible    func(r *http.Request, repo string) bool
	maxEntries int // catalog.maxentries; 0: no bound
}

// catalog implements GET /v2/_catalog with n/last pagination and a Link
// header to the next page.
func (h *catalogHandler) catalog(w http.ResponseWriter, r *http.Request) error {
	n, last, err := pagination(r)
	if err != nil {
		return err
	}
	if most := h.maxEntries; most > 0 {
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
		names := h.repos.Repositories(from, chunk)
		for _, name := range names {
			if h.visible(r, name) {
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
