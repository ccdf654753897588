package api

import (
	"net/http"
	"strconv"
	"strings"
)

// searchResult is one repository in a search answer, as Docker Hub's v1
// search API shapes it (what `docker search HOST/term` reads).
type searchResult struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	StarCount   int    `json:"star_count"`
	IsOfficial  bool   `json:"is_official"`
	IsAutomated bool   `json:"is_automated"`
}

// search implements GET /v1/search?q=term&n=25: the repositories whose
// name contains the term, from the catalog.
func (h *catalogHandler) search(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	term := strings.ToLower(strings.TrimSpace(q.Get("q")))
	limit := 25
	if s := q.Get("n"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return newError(http.StatusBadRequest, codeUnsupported, "invalid n %q", truncate(s))
		}
		limit = min(n, 100)
	}
	results := []searchResult{}
	for _, name := range h.repos.Repositories("", 0) {
		if !strings.Contains(name, term) || !h.visible(r, name) {
			continue
		}
		if len(results) < limit {
			results = append(results, searchResult{Name: name})
		}
	}
	return writeJSON(w, "application/json", map[string]any{
		"num_results": len(results),
		"query":       q.Get("q"),
		"page":        1,
		"num_pages":   1,
		"page_size":   limit,
		"results":     results,
	})
}
