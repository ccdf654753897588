package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api/oci"
)

// repoName returns the validated repository name of the request.
func repoName(r *http.Request) (string, error) {
	name := mux.Vars(r)["name"]
	if !oci.ValidName(name) {
		return "", newError(http.StatusBadRequest, codeNameInvalid, "invalid repository name %q", truncate(name))
	}
	return name, nil
}

// pathDigest returns the validated digest in the path variable v.
func pathDigest(r *http.Request, v string) (digest.Digest, error) {
	return parseDigest(mux.Vars(r)[v])
}

func parseDigest(s string) (digest.Digest, error) {
	d, err := oci.ParseDigest(s)
	if err != nil {
		return "", newError(http.StatusBadRequest, codeDigestInvalid, "invalid digest %q: %v", truncate(s), err)
	}
	return d, nil
}

// truncate keeps hostile input out of error messages past a sane length.
func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// pagination parses the n and last query parameters of the list APIs.
func pagination(r *http.Request) (n int, last string, err error) {
	q := r.URL.Query()
	last = q.Get("last")
	if s := q.Get("n"); s != "" {
		n, err = strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, "", newError(http.StatusBadRequest, codeUnsupported, "invalid n %q", truncate(s))
		}
	} else {
		n = -1
	}
	return n, last, nil
}

// page applies n (negative: no limit) and sets the Link header when the
// list was cut short.
func page(w http.ResponseWriter, path string, items []string, n int) []string {
	if n < 0 || len(items) <= n {
		return items
	}
	if n == 0 {
		return []string{}
	}
	items = items[:n]
	q := url.Values{"n": {strconv.Itoa(n)}, "last": {items[len(items)-1]}}
	w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, path, q.Encode()))
	return items
}

// contentRange parses a chunk's Content-Range, "<start>-<end>" with an
// inclusive end (an optional "bytes " or "bytes=" prefix is accepted).
func contentRange(s string) (start, end int64, err error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "bytes "), "bytes=")
	a, b, ok := strings.Cut(s, "-")
	if ok {
		start, err = strconv.ParseInt(a, 10, 64)
	}
	if ok && err == nil {
		end, err = strconv.ParseInt(b, 10, 64)
	}
	if !ok || err != nil || start < 0 || end < start || a[0] == '+' || b[0] == '+' {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", truncate(s))
	}
	return start, end, nil
}
