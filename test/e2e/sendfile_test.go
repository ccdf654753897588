package e2e

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestBlobBytesCounted: a blob's bytes leave through sendfile(2), past
// every middleware, and the bytes-out metric still counts them: a whole
// GET, a range and a HEAD of a 3 MiB blob add its size plus the range's
// length to atoll_http_response_bytes_total{route="blobs"}, and each
// answer carries the right bytes.
func TestBlobBytesCounted(t *testing.T) {
	debug := freeAddr(t)
	n := startNodeWith(t, t.TempDir(), nodeOptions{env: []string{"REGISTRY_HTTP_DEBUG_ADDR=" + debug}})
	c := newClient(n.URL())
	defer c.close()
	ctx := context.Background()
	data := randomBytes(3<<20 + 17)
	const repo = "metrics/blob"
	if err := c.pushMonolithic(ctx, repo, data); err != nil {
		t.Fatal(err)
	}
	before := blobBytesOut(ctx, t, c, "http://"+debug+"/metrics")
	d := digest.FromBytes(data)
	if err := c.getBlob(ctx, repo, d, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	path := "/v2/" + repo + "/blobs/" + d.String()
	r, err := c.do(ctx, "GET", path, http.Header{"Range": {"bytes=1000-1999"}}, nil, http.StatusPartialContent)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.body, data[1000:2000]) {
		t.Fatalf("range: %d bytes, not the blob's", len(r.body))
	}
	if _, err := c.do(ctx, "HEAD", path, nil, nil, http.StatusOK); err != nil {
		t.Fatal(err)
	}
	after := blobBytesOut(ctx, t, c, "http://"+debug+"/metrics")
	if got, want := after-before, int64(len(data)+1000); got != want {
		t.Errorf("atoll_http_response_bytes_total{route=\"blobs\"} grew by %d, want %d", got, want)
	}
}

// blobBytesOut reads atoll_http_response_bytes_total{route="blobs"}; 0
// before any blob was served.
func blobBytesOut(ctx context.Context, t *testing.T, c *client, url string) int64 {
	t.Helper()
	f, err := metricValue(ctx, c, url, `atoll_http_response_bytes_total{route="blobs"}`)
	if errors.Is(err, errNoSeries) {
		return 0 // no blob served yet
	}
	if err != nil {
		t.Fatal(err)
	}
	return int64(f)
}
