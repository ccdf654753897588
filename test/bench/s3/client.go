package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"time"
)

// The HTTP helpers below are condensed copies of test/bench/cluster's
// (that harness is package main and cannot be imported).

// newHTTPClient returns a keep-alive client with large socket buffers and no
// transparent compression or proxying.
func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Minute,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        4 * conns,
			MaxIdleConnsPerHost: conns,
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

// checkStatus fails with the start of the response body if status != want.
func checkStatus(resp *http.Response, want int) error {
	if resp.StatusCode == want {
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("%s %s: status %s, want %d: %s", resp.Request.Method, resp.Request.URL.Redacted(),
		resp.Status, want, bytes.TrimSpace(msg))
}

// send issues one request whose body streams from data (nil for none, with
// Content-Length set either way), drains and closes the response, and fails
// unless the status is want.
func send(ctx context.Context, hc *http.Client, method, u string, data []byte, want int) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := checkStatus(resp, want); err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp, nil
}

// push uploads data as POST + one streamed PUT ?digest= (monolithic) and
// checks the Docker-Content-Digest of the 201.
func push(ctx context.Context, hc *http.Client, base, repo string, data []byte, dgst string) error {
	resp, err := send(ctx, hc, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil, http.StatusAccepted)
	if err != nil {
		return err
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return fmt.Errorf("POST upload: bad Location %q", resp.Header.Get("Location"))
	}
	q := loc.Query()
	q.Set("digest", dgst)
	loc.RawQuery = q.Encode()
	if resp, err = send(ctx, hc, http.MethodPut, loc.String(), data, http.StatusCreated); err != nil {
		return err
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != dgst {
		return fmt.Errorf("PUT blob: Docker-Content-Digest %s, want %s", got, dgst)
	}
	return nil
}

// pull GETs a blob into buf (len(buf) must be the blob size). It fails on a
// wrong status, length or Docker-Content-Digest, or a short or long body;
// the caller checks the content after its timer.
func pull(ctx context.Context, hc *http.Client, base, repo, dgst string, buf []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/"+repo+"/blobs/"+dgst, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := checkStatus(resp, http.StatusOK); err != nil {
		return err
	}
	if resp.ContentLength >= 0 && resp.ContentLength != int64(len(buf)) {
		return fmt.Errorf("GET blob: Content-Length %d, want %d", resp.ContentLength, len(buf))
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != dgst {
		return fmt.Errorf("GET blob: Docker-Content-Digest %s, want %s", got, dgst)
	}
	return readExactly(resp.Body, buf, "GET blob")
}

// readExactly fills buf from r and fails if r is shorter or longer.
func readExactly(r io.Reader, buf []byte, what string) error {
	if _, err := io.ReadFull(r, buf); err != nil {
		return fmt.Errorf("%s: reading body: %w", what, err)
	}
	if n, _ := r.Read(make([]byte, 1)); n != 0 {
		return fmt.Errorf("%s: body longer than %d bytes", what, len(buf))
	}
	return nil
}
