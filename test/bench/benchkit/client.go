package benchkit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// OctetStream is the Content-Type of blob uploads.
const OctetStream = "application/octet-stream"

// NewHTTPClient returns a keep-alive client with large socket buffers and no
// transparent compression or proxying, so the server's own speed dominates.
// It follows redirects (307 included).
func NewHTTPClient(maxIdle, maxIdlePerHost int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Minute,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        maxIdle,
			MaxIdleConnsPerHost: maxIdlePerHost,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			WriteBufferSize:     1 << 20,
			ReadBufferSize:      1 << 20,
		},
	}
}

// Digest returns the "sha256:<hex>" digest of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Send issues one request with an in-memory body (nil for none; either way
// Content-Length is set, so PUT/PATCH/POST send "Content-Length: 0") and
// the headers in hdr, drains and closes the response, and fails unless the
// status is want.
func Send(ctx context.Context, hc *http.Client, method, rawURL string, body []byte, hdr map[string]string, want int) (*http.Response, error) {
	resp, err := do(ctx, hc, method, rawURL, body, hdr, want)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp, nil
}

// Get issues a GET with the headers in hdr and fails unless it answers 200.
// The caller reads and closes the body.
func Get(ctx context.Context, hc *http.Client, rawURL string, hdr map[string]string) (*http.Response, error) {
	return do(ctx, hc, http.MethodGet, rawURL, nil, hdr, http.StatusOK)
}

// do issues one request and fails unless the status is want; on success
// the caller reads and closes the body.
func do(ctx context.Context, hc *http.Client, method, rawURL string, body []byte, hdr map[string]string, want int) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if err := CheckStatus(resp, want); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// CheckStatus fails with the start of the response body if status != want.
func CheckStatus(resp *http.Response, want int) error {
	if resp.StatusCode == want {
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("%s %s: status %s, want %d: %s", resp.Request.Method, resp.Request.URL.Redacted(),
		resp.Status, want, bytes.TrimSpace(msg))
}

// NextLocation resolves the Location header of resp against its request URL.
func NextLocation(resp *http.Response) (string, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("%s %s: no Location header", resp.Request.Method, resp.Request.URL.Path)
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("bad Location %q: %w", loc, err)
	}
	return u.String(), nil
}

// withDigest appends digest=<dgst> to an upload location, keeping any
// registry state already in its query string.
func withDigest(loc, dgst string) (string, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return "", err
	}
	q := "digest=" + url.QueryEscape(dgst)
	if u.RawQuery != "" {
		q = u.RawQuery + "&" + q
	}
	u.RawQuery = q
	return u.String(), nil
}

// StartUpload opens a blob upload session (POST) and returns its location.
func StartUpload(ctx context.Context, hc *http.Client, base, repo string) (string, error) {
	resp, err := Send(ctx, hc, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil, nil, http.StatusAccepted)
	if err != nil {
		return "", err
	}
	return NextLocation(resp)
}

// FinishUpload PUTs ?digest= to loc with body (nil for none) and checks the
// 201 and, when present, the Docker-Content-Digest header.
func FinishUpload(ctx context.Context, hc *http.Client, loc, dgst string, body []byte) error {
	putURL, err := withDigest(loc, dgst)
	if err != nil {
		return err
	}
	hdr := map[string]string{"Content-Type": OctetStream}
	resp, err := Send(ctx, hc, http.MethodPut, putURL, body, hdr, http.StatusCreated)
	if err != nil {
		return err
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != dgst {
		return fmt.Errorf("PUT blob: Docker-Content-Digest %s, want %s", got, dgst)
	}
	return nil
}

// PushMonolithic uploads data as POST + one streamed PUT ?digest=.
func PushMonolithic(ctx context.Context, hc *http.Client, base, repo string, data []byte, dgst string) error {
	loc, err := StartUpload(ctx, hc, base, repo)
	if err != nil {
		return err
	}
	return FinishUpload(ctx, hc, loc, dgst, data)
}

// Pull GETs a blob into buf (len(buf) must be the blob size), following
// redirects, and returns the host that finally answered. It fails on a
// wrong status, Content-Length or Docker-Content-Digest, or a short or long
// body; the caller checks the content (after its timer).
func Pull(ctx context.Context, hc *http.Client, base, repo, dgst string, buf []byte) (string, error) {
	resp, err := Get(ctx, hc, base+"/v2/"+repo+"/blobs/"+dgst, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.ContentLength >= 0 && resp.ContentLength != int64(len(buf)) {
		return "", fmt.Errorf("GET blob: Content-Length %d, want %d", resp.ContentLength, len(buf))
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != dgst {
		return "", fmt.Errorf("GET blob: Docker-Content-Digest %s, want %s", got, dgst)
	}
	if err := ReadExactly(resp.Body, buf, "GET blob"); err != nil {
		return "", err
	}
	return resp.Request.URL.Host, nil
}

// ReadExactly fills buf from r and fails if r is shorter or longer; what
// starts the error messages.
func ReadExactly(r io.Reader, buf []byte, what string) error {
	if _, err := io.ReadFull(r, buf); err != nil {
		return fmt.Errorf("%s: reading body: %w", what, err)
	}
	if n, _ := r.Read(make([]byte, 1)); n != 0 {
		return fmt.Errorf("%s: body longer than %d bytes", what, len(buf))
	}
	return nil
}
