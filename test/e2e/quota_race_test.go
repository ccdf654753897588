package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// TestQuotaClusterRace tries to break a quota's limit: pushers on all 3
// members of a cluster push distinct blobs into the quota's repositories
// at once, each until the quota refuses it. The bytes acknowledged (201)
// must never add up past the limit; and since every admitted push
// succeeds, the first refusal proves the quota was all but full (no room
// lost to writes that never were).
func TestQuotaClusterRace(t *testing.T) {
	const (
		limit     = 48 << 10
		blobSize  = 2 << 10
		perMember = 4
	)
	cl := startLoopbackCluster(t, 3, clusterOptions{
		args: []string{"--config", ptWriteConfig(t, fmt.Sprintf("quotas:\n  - name: team\n    repositories: [\"team/**\"]\n    limit: %d\n", limit))},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var cs []*client
	for _, m := range cl.members {
		c := newClient(m.URL())
		defer c.close()
		cs = append(cs, c)
	}

	var acked, refused atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(cs)*perMember)
	for mi, c := range cs {
		for p := range perMember {
			wg.Go(func() {
				repo := fmt.Sprintf("team/r%d", p%2)
				for i := 0; ; i++ {
					blob := fill(blobSize, fmt.Sprintf("m%d-p%d-%d.", mi, p, i))
					status, err := pushOnce(ctx, c, repo, blob, (p+i)%2 == 0)
					switch {
					case err != nil:
						errs <- err
						return
					case status == http.StatusCreated:
						acked.Add(blobSize)
					case status == http.StatusForbidden:
						refused.Add(1)
						return
					default:
						errs <- fmt.Errorf("%s: push answered %d", c.base, status)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := acked.Load()
	t.Logf("acknowledged %d bytes of a %d-byte quota; %d pushers refused", got, limit, refused.Load())
	if got > limit {
		t.Fatalf("acknowledged %d bytes, past the quota's %d", got, limit)
	}
	if got <= limit-blobSize {
		t.Errorf("acknowledged %d bytes: refused while %d bytes were free", got, limit-got)
	}
	waitUsage(t, ctx, "every member counts what was acknowledged", got, cs...)
}

// pushOnce pushes blob into repo, monolithic or as an upload session, and
// returns the final status.
func pushOnce(ctx context.Context, c *client, repo string, blob []byte, monolithic bool) (int, error) {
	d := digest.FromBytes(blob)
	if monolithic {
		r, err := c.do(ctx, "POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), octetStream, blob, http.StatusCreated, http.StatusForbidden)
		if err != nil {
			return 0, err
		}
		return r.status, nil
	}
	loc, err := c.startUpload(ctx, repo)
	if err != nil {
		return 0, err
	}
	r, err := c.do(ctx, "PUT", withDigest(loc, d), octetStream, blob, http.StatusCreated, http.StatusForbidden)
	if err != nil {
		return 0, err
	}
	return r.status, nil
}
