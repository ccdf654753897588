package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// client speaks the distribution API to one member, the way a push client
// does, with nothing but net/http.
type client struct {
	base string
	hc   *http.Client
}

// newClient returns a client with its own connection pool, so connections
// to a killed process are never reused.
func newClient(base string) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	return &client{base: base, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// response is a finished exchange; the body has been read in full.
type response struct {
	status int
	header http.Header
	length int64 // Content-Length, -1 when unknown
	body   []byte
}

// statusError is a response the caller did not expect.
type statusError struct {
	method, url string
	status      int
	body        string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.url, e.status, strings.TrimSpace(e.body))
}

// do sends one request to path (absolute, or relative to the base URL) and
// fails with a *statusError unless the status is one of want.
func (c *client) do(ctx context.Context, method, path string, header http.Header, body []byte, want ...int) (*response, error) {
	u := path
	if !strings.HasPrefix(u, "http://") {
		u = c.base + path
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.ContentLength = int64(len(body))
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading body: %w", method, u, err)
	}
	r := &response{status: resp.StatusCode, header: resp.Header, length: resp.ContentLength, body: data}
	for _, w := range want {
		if w == r.status {
			return r, nil
		}
	}
	return r, &statusError{method, u, r.status, string(data)}
}

var octetStream = http.Header{"Content-Type": {"application/octet-stream"}}

// withDigest appends ?digest=d to an upload location that may already have
// a query.
func withDigest(loc string, d digest.Digest) string {
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	return loc + sep + "digest=" + url.QueryEscape(d.String())
}

// pushMonolithic stores data in repo with one POST ?digest=.
func (c *client) pushMonolithic(ctx context.Context, repo string, data []byte) error {
	d := digest.FromBytes(data)
	_, err := c.do(ctx, "POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), octetStream, data, http.StatusCreated)
	return err
}

// startUpload opens an upload session and returns its location.
func (c *client) startUpload(ctx context.Context, repo string) (string, error) {
	r, err := c.do(ctx, "POST", "/v2/"+repo+"/blobs/uploads/", nil, nil, http.StatusAccepted)
	if err != nil {
		return "", err
	}
	loc := r.header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("POST /v2/%s/blobs/uploads/: 202 without Location", repo)
	}
	return loc, nil
}

// patchChunk appends chunk at offset of the session at loc and returns the
// session's next location. The Range answered must cover offset+len(chunk).
func (c *client) patchChunk(ctx context.Context, loc string, chunk []byte, offset int64) (string, error) {
	h := octetStream.Clone()
	end := offset + int64(len(chunk)) - 1
	h.Set("Content-Range", fmt.Sprintf("%d-%d", offset, end))
	r, err := c.do(ctx, "PATCH", loc, h, chunk, http.StatusAccepted)
	if err != nil {
		return "", err
	}
	if got := r.header.Get("Range"); got != fmt.Sprintf("0-%d", end) {
		return "", fmt.Errorf("PATCH %s: Range %q after a chunk ending at %d", loc, got, end)
	}
	if next := r.header.Get("Location"); next != "" {
		loc = next
	}
	return loc, nil
}

// finishUpload closes the session at loc with PUT ?digest=, sending last
// (which may be empty) as the final chunk starting at offset.
func (c *client) finishUpload(ctx context.Context, loc string, d digest.Digest, last []byte, offset int64) error {
	h := octetStream.Clone()
	if len(last) > 0 {
		h.Set("Content-Range", fmt.Sprintf("%d-%d", offset, offset+int64(len(last))-1))
	}
	_, err := c.do(ctx, "PUT", withDigest(loc, d), h, last, http.StatusCreated)
	return err
}

// uploadStatus asks for the session at loc. It returns the number of bytes
// the session holds, or -1 when the registry answers 404
// BLOB_UPLOAD_UNKNOWN; any other answer is an error.
func (c *client) uploadStatus(ctx context.Context, loc string) (int64, error) {
	r, err := c.do(ctx, "GET", loc, nil, nil, http.StatusNoContent, http.StatusNotFound)
	if err != nil {
		return 0, err
	}
	if r.status == http.StatusNotFound {
		if !bytes.Contains(r.body, []byte("BLOB_UPLOAD_UNKNOWN")) {
			return 0, fmt.Errorf("GET %s: 404 without BLOB_UPLOAD_UNKNOWN: %s", loc, r.body)
		}
		return -1, nil
	}
	rng := r.header.Get("Range")
	start, end, ok := strings.Cut(rng, "-")
	n, err := strconv.ParseInt(end, 10, 64)
	if !ok || start != "0" || err != nil {
		return 0, fmt.Errorf("GET %s: 204 with Range %q", loc, rng)
	}
	if n == 0 {
		return 0, nil // "0-0" is an empty session; chunks here are never 1 byte
	}
	return n + 1, nil
}

// getBlob fetches a blob and checks its size and digest.
func (c *client) getBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	r, err := c.do(ctx, "GET", "/v2/"+repo+"/blobs/"+d.String(), nil, nil, http.StatusOK)
	if err != nil {
		return err
	}
	if got := d.Algorithm().FromBytes(r.body); got != d || int64(len(r.body)) != size {
		return fmt.Errorf("GET blob %s in %s: got %d bytes with digest %s, want %d bytes", d, repo, len(r.body), got, size)
	}
	return nil
}

// getJSON decodes the JSON body of a GET that must answer 200.
func (c *client) getJSON(ctx context.Context, path string, v any) error {
	r, err := c.do(ctx, "GET", path, nil, nil, http.StatusOK)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

// getManifest fetches a manifest by tag or digest and returns its content
// and digest, checking Docker-Content-Digest against the content.
func (c *client) getManifest(ctx context.Context, repo, ref string) ([]byte, digest.Digest, error) {
	r, err := c.do(ctx, "GET", "/v2/"+repo+"/manifests/"+ref, http.Header{"Accept": {ociManifest}}, nil, http.StatusOK)
	if err != nil {
		return nil, "", err
	}
	d := digest.FromBytes(r.body)
	if h := r.header.Get("Docker-Content-Digest"); h != d.String() {
		return nil, "", fmt.Errorf("GET manifest %s in %s: Docker-Content-Digest %s, content is %s", ref, repo, h, d)
	}
	return r.body, d, nil
}
