package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/oci"
)

// repoName returns the validated repository name of the request.
func repoName(r *http.Request) (string, error) {
	name := r.PathValue(pathName)
	if !oci.ValidName(name) {
		return "", newError(http.StatusBadRequest, codeNameInvalid, "invalid repository name %q", truncate(name))
	}
	return name, nil
}

// repoAndDigest returns the repository and the {digest} of a request
// naming both, or the error for the first that is invalid.
func repoAndDigest(r *http.Request) (string, digest.Digest, error) {
	repo, err := repoName(r)
	if err != nil {
		return "", "", err
	}
	d, err := parseDigest(r.PathValue(pathDigest))
	return repo, d, err
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

// Request bodies that stall. A client that stops sending in the middle of a
// body would otherwise hold its handler, and whatever the handler holds,
// for as long as the connection lives. IdleBodies cuts such a body off;
// an upload DELETE aborts the body of a PATCH or PUT on the same upload.

var (
	// errBodyIdle is returned by a body that sent nothing for too long.
	errBodyIdle = errors.New("request body idle")
	// errBodyAborted is returned by a body another request aborted.
	errBodyAborted = errors.New("request body aborted")
)

// IdleBodies wraps h so that a request body that sends nothing for idle
// fails with an error, answered 408 by the upload handlers. Each read that
// returns data pushes the connection's read deadline (set through
// http.ResponseController) idle into the future; the deadline is cleared
// once the body ends, so a long commit after the last byte is not cut off.
// idle <= 0 leaves bodies alone.
func IdleBodies(idle time.Duration, h http.Handler) http.Handler {
	if idle <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		b := newWatchedBody(w, r.Body, idle)
		r = r.WithContext(context.WithValue(r.Context(), watchedBodyKey{}, b))
		r.Body = b
		h.ServeHTTP(w, r)
	})
}

type watchedBodyKey struct{}

// watchedBody is a request body that can be cut off: after idle without
// data (when idle > 0), or at once by abort. It reads from one goroutine;
// abort may be called from any.
type watchedBody struct {
	body io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration

	mu       sync.Mutex
	started  bool
	aborted  bool
	ended    bool
	extended time.Time // when the deadline was last pushed
}

func newWatchedBody(w http.ResponseWriter, body io.ReadCloser, idle time.Duration) *watchedBody {
	return &watchedBody{body: body, rc: http.NewResponseController(w), idle: idle}
}

// bodyOf returns r's body as a watchedBody: the one IdleBodies installed,
// or a new one without an idle limit that abort can still cut off.
func bodyOf(w http.ResponseWriter, r *http.Request) *watchedBody {
	if b, ok := r.Context().Value(watchedBodyKey{}).(*watchedBody); ok {
		return b
	}
	if b, ok := r.Body.(*watchedBody); ok {
		return b
	}
	b := newWatchedBody(w, r.Body, 0)
	r.Body = b
	return b
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.aborted {
		b.mu.Unlock()
		return 0, errBodyAborted
	}
	if !b.started {
		b.started = true
		b.push(time.Now())
	}
	b.mu.Unlock()

	n, err := b.body.Read(p)

	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.aborted:
		return n, errBodyAborted
	case err == io.EOF:
		b.ended = true
		if b.idle > 0 {
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		return n, fmt.Errorf("%w: no data for %v", errBodyIdle, b.idle)
	case n > 0:
		if now := time.Now(); now.Sub(b.extended) >= b.idle/16 {
			b.push(now)
		}
	}
	return n, err
}

// push moves the read deadline idle past now. b.mu is held.
func (b *watchedBody) push(now time.Time) {
	if b.idle > 0 && !b.ended {
		b.extended = now
		_ = b.rc.SetReadDeadline(now.Add(b.idle))
	}
}

// abort makes the body's pending and later reads fail with errBodyAborted.
func (b *watchedBody) abort() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.aborted || b.ended {
		return
	}
	b.aborted = true
	_ = b.rc.SetReadDeadline(time.Now()) // wakes a read waiting for data
}

func (b *watchedBody) Close() error { return b.body.Close() }
