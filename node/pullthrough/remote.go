package pullthrough

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Timeouts that make a down or stalled upstream fail fast, so a tag pull
// falls back to the cached copy within seconds. Variables so tests can
// shorten them.
var (
	dialTimeout   = 3 * time.Second  // TCP connect
	tlsTimeout    = 5 * time.Second  // TLS handshake
	headerTimeout = 10 * time.Second // request sent -> response header
	idleTimeout   = 30 * time.Second // a blob body making no progress
	manifestLimit = int64(4 << 20)   // largest manifest read, as api's default
)

// client reaches one upstream registry reached over HTTP, with its credentials
// and tokens. Its methods may be called concurrently.
type client struct {
	base     string // scheme://host[:port][/path], no trailing slash
	hub      bool   // Docker Hub: one-word names are under library/
	username string
	password string
	hc       *http.Client
	tokens   tokenCache
	host     string   // the upstream's host, the metrics' label
	limit    *limiter // the upstream's rate limit
	m        *metrics
}

func newClient(u Upstream, m *metrics) (*client, error) {
	base, err := parseRemoteURL(u.RemoteURL)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   tlsTimeout,
		ResponseHeaderTimeout: headerTimeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   16,
		ForceAttemptHTTP2:     true,
	}
	hub := base.Host == dockerHubHost
	if u.Library != nil {
		hub = *u.Library
	}
	maxWait := u.MaxWait
	if maxWait == 0 {
		maxWait = DefaultMaxWait
	}
	return &client{
		base:     base.String(),
		hub:      hub,
		username: u.Username,
		password: u.Password,
		hc:       &http.Client{Transport: tr},
		host:     base.Host,
		limit:    &limiter{host: base.Host, maxWait: max(maxWait, 0), m: m},
		m:        m,
	}, nil
}

// repoName is the upstream name of a repository, given its name with the
// route's prefix removed.
func (r *client) repoName(name string) string {
	if r.hub && !strings.Contains(name, "/") {
		return "library/" + name
	}
	return name
}

// kindOf names the kind of an upstream request path for the metrics.
func kindOf(path string) string {
	if strings.HasPrefix(path, "blobs/") {
		return "blob"
	}
	return "manifest"
}

// statusError is an upstream answer other than 200.
type statusError struct {
	method, url string
	status      int
	body        string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("upstream %s %s: %d %s", e.method, e.url, e.status, e.body)
}

// upstreamStatus returns the HTTP status in err, or 0 when the upstream
// gave none (unreachable, timeout, bad content).
func upstreamStatus(err error) int {
	var se *statusError
	if errors.As(err, &se) {
		return se.status
	}
	return 0
}

// newStatusError reads a little of the body for the message and closes it.
func newStatusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_ = resp.Body.Close()
	req := resp.Request
	return &statusError{method: req.Method, url: req.URL.Redacted(), status: resp.StatusCode, body: strings.TrimSpace(string(b))}
}

// do sends method to /v2/<repo>/<path> of the upstream and returns its 200
// response, whose body the caller closes; any other status is a
// *statusError. It authenticates as the upstream asks: with a cached Bearer
// token, else Basic when credentials are configured; on a 401 with a Bearer
// challenge it gets a token for the challenge's scope and retries once.
// Redirects are followed; Go drops the Authorization header when one leaves
// the upstream's host.
func (r *client) do(ctx context.Context, method, repo, path, accept string) (*http.Response, error) {
	u := r.base + "/v2/" + repo + "/" + path
	scope := "repository:" + repo + ":pull"
	kind := kindOf(path)
	resp, err := r.send(ctx, kind, method, u, accept, r.tokens.get(scope))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		if ch, ok := parseBearer(resp.Header.Values("WWW-Authenticate")); ok {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			_ = resp.Body.Close()
			tok, err := r.token(ctx, ch, scope)
			if err != nil {
				return nil, err
			}
			if resp, err = r.send(ctx, kind, method, u, accept, tok); err != nil {
				return nil, err
			}
		}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, newStatusError(resp)
	}
	return resp, nil
}

// send sends one request once the upstream's rate limit admits it, and
// learns from the answer: a 429 is returned as the client's 429 (an
// *api.Error), the body closed.
func (r *client) send(ctx context.Context, kind, method, u, accept, token string) (*http.Response, error) {
	if err := r.limit.admit(ctx); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	switch {
	case token != "":
		req.Header.Set("Authorization", "Bearer "+token)
	case r.username != "":
		req.SetBasicAuth(r.username, r.password)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		r.m.requests.WithLabelValues(r.host, kind, "0").Inc()
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in the caller's context
		}
		return nil, fmt.Errorf("upstream %s %s: %w", method, u, err)
	}
	r.m.requests.WithLabelValues(r.host, kind, strconv.Itoa(resp.StatusCode)).Inc()
	if err := r.limit.observe(resp); err != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
		return nil, err
	}
	return resp, nil
}
