package main

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

const octetStream = "application/octet-stream"

// newHTTPClient returns a keep-alive client with large socket buffers and no
// transparent compression or proxying, so the registry's own speed dominates.
func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Minute,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        16,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			WriteBufferSize:     1 << 20,
			ReadBufferSize:      1 << 20,
		},
	}
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// send issues one request with an in-memory body (nil for none), drains and
// closes the response, and fails unless the status is want.
func send(ctx context.Context, hc *http.Client, method, rawURL string, body []byte, hdr map[string]string, want int) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	req.ContentLength = int64(len(body)) // 0 with a nil body sends "Content-Length: 0" for PUT/PATCH/POST
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := checkStatus(method, resp, want); err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp, nil
}

// checkStatus fails with the start of the response body if status != want.
func checkStatus(method string, resp *http.Response, want int) error {
	if resp.StatusCode == want {
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("%s %s: status %s, want %d: %s", method, resp.Request.URL.Redacted(), resp.Status, want, bytes.TrimSpace(msg))
}

// nextLocation resolves the Location header of resp against its request URL.
func nextLocation(resp *http.Response) (string, error) {
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

// startUpload opens a blob upload session and returns its location.
func startUpload(ctx context.Context, hc *http.Client, base, repo string) (string, error) {
	resp, err := send(ctx, hc, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil, nil, http.StatusAccepted)
	if err != nil {
		return "", err
	}
	return nextLocation(resp)
}

// finishUpload PUTs ?digest= to loc with body (nil for none) and checks the
// 201 and, when present, the Docker-Content-Digest header.
func finishUpload(ctx context.Context, hc *http.Client, loc, dgst string, body []byte) error {
	putURL, err := withDigest(loc, dgst)
	if err != nil {
		return err
	}
	hdr := map[string]string{"Content-Type": octetStream}
	resp, err := send(ctx, hc, http.MethodPut, putURL, body, hdr, http.StatusCreated)
	if err != nil {
		return err
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != dgst {
		return fmt.Errorf("PUT blob: Docker-Content-Digest %s, want %s", got, dgst)
	}
	return nil
}

// pushMonolithic uploads data as POST + one streamed PUT.
func pushMonolithic(ctx context.Context, hc *http.Client, base, repo string, data []byte, dgst string) error {
	loc, err := startUpload(ctx, hc, base, repo)
	if err != nil {
		return err
	}
	return finishUpload(ctx, hc, loc, dgst, data)
}

// pushChunked uploads data as POST, one PATCH per chunk (following Location
// each time), then an empty PUT ?digest=.
func pushChunked(ctx context.Context, hc *http.Client, base, repo string, data []byte, dgst string, chunk int) error {
	loc, err := startUpload(ctx, hc, base, repo)
	if err != nil {
		return err
	}
	for off := 0; off < len(data); off += chunk {
		end := min(off+chunk, len(data))
		hdr := map[string]string{
			"Content-Type":  octetStream,
			"Content-Range": fmt.Sprintf("%d-%d", off, end-1),
		}
		resp, err := send(ctx, hc, http.MethodPatch, loc, data[off:end], hdr, http.StatusAccepted)
		if err != nil {
			return fmt.Errorf("chunk at %d: %w", off, err)
		}
		if loc, err = nextLocation(resp); err != nil {
			return err
		}
	}
	return finishUpload(ctx, hc, loc, dgst, nil)
}

// pullInto GETs a blob into buf (len(buf) must be the blob size), failing
// on a wrong status, a wrong length or a short or long body. The caller
// compares buf against the expected bytes after timing.
func pullInto(ctx context.Context, hc *http.Client, base, repo, dgst string, buf []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/"+repo+"/blobs/"+dgst, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := checkStatus(http.MethodGet, resp, http.StatusOK); err != nil {
		return err
	}
	if resp.ContentLength >= 0 && resp.ContentLength != int64(len(buf)) {
		return fmt.Errorf("GET blob: Content-Length %d, want %d", resp.ContentLength, len(buf))
	}
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		return fmt.Errorf("GET blob: reading body: %w", err)
	}
	if n, _ := resp.Body.Read(make([]byte, 1)); n != 0 {
		return fmt.Errorf("GET blob: body longer than %d bytes", len(buf))
	}
	return nil
}

// putManifest uploads a manifest under tag and checks the returned digest.
func putManifest(ctx context.Context, hc *http.Client, base, repo, tag, mediaType string, body []byte) error {
	hdr := map[string]string{"Content-Type": mediaType}
	resp, err := send(ctx, hc, http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag, body, hdr, http.StatusCreated)
	if err != nil {
		return err
	}
	if got, want := resp.Header.Get("Docker-Content-Digest"), sha256Digest(body); got != "" && got != want {
		return fmt.Errorf("PUT manifest: Docker-Content-Digest %s, want %s", got, want)
	}
	return nil
}

// getManifest fetches a manifest and checks it is byte-identical to want.
func getManifest(ctx context.Context, hc *http.Client, base, repo, tag, mediaType string, want []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", mediaType)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := checkStatus(http.MethodGet, resp, http.StatusOK); err != nil {
		return err
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("GET manifest: body differs from what was pushed (%d vs %d bytes)", len(got), len(want))
	}
	if ct := resp.Header.Get("Content-Type"); ct != mediaType {
		return fmt.Errorf("GET manifest: Content-Type %q, want %q", ct, mediaType)
	}
	return nil
}
