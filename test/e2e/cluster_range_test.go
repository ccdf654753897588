package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// TestClusterRangeThroughNonOwner reads ranges of a blob through members
// that do not hold it, with both routings: a valid range is served (206),
// an invalid one answered 416 as the holder would.
func TestClusterRangeThroughNonOwner(t *testing.T) {
	for _, routing := range []string{"proxy", "redirect"} {
		t.Run(routing, func(t *testing.T) {
			c := startLoopbackCluster(t, 3, clusterOptions{replicas: 1, routing: routing})
			data := make([]byte, 10000)
			_, _ = rand.Read(data)
			d := digest.FromBytes(data)
			ctx := context.Background()
			if err := newClient(c.members[0].URL()).pushMonolithic(ctx, "ranges/blob", data); err != nil {
				t.Fatal(err)
			}
			var readers []*clusterMember
			for _, m := range c.members {
				if files, err := m.blobFiles(); err == nil && !files[d] {
					readers = append(readers, m)
				}
			}
			if len(readers) != 2 {
				t.Fatalf("%d members lack the blob, want 2 (R=1 of 3)", len(readers))
			}
			for _, m := range readers {
				for _, tc := range []struct {
					rng    string
					status int
					body   []byte
				}{
					{"bytes=500-1499", http.StatusPartialContent, data[500:1500]},
					{"bytes=9500-", http.StatusPartialContent, data[9500:]},
					{"bytes=500-0", http.StatusRequestedRangeNotSatisfiable, nil},
					{"bytes=20000-30000", http.StatusRequestedRangeNotSatisfiable, nil},
				} {
					resp, body := rangeGet(t, m.URL()+"/v2/ranges/blob/blobs/"+d.String(), tc.rng)
					if resp.StatusCode != tc.status || (tc.body != nil && !bytes.Equal(body, tc.body)) {
						t.Errorf("%s via %s: %s, %d bytes; want %d", tc.rng, m.name, resp.Status, len(body), tc.status)
					}
				}
			}
		})
	}
}

func rangeGet(t *testing.T, url, rng string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Range", rng)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s (%s): %v", url, rng, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatal(fmt.Errorf("read: %w", err))
	}
	return resp, buf.Bytes()
}
