package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// Immutable tags: once a tag matching a rule exists it never moves and is
// never deleted; pushing its digest again answers 201.

const immutableConfig = `
immutable:
  - repositories: ["**"]
    tags: ['^v\d+\.\d+\.\d+$']
`

var manifestHeader = http.Header{"Content-Type": {ociManifest}}

// pushImageBlobs pushes config and layers into repo.
func pushImageBlobs(ctx context.Context, c *client, repo string, blobs ...[]byte) error {
	for _, b := range blobs {
		if err := c.pushMonolithic(ctx, repo, b); err != nil {
			return err
		}
	}
	return nil
}

// errorCode returns the first OCI error code and message of a response body.
func errorCode(r *response) string {
	if r == nil {
		return ""
	}
	return strings.TrimSpace(string(r.body))
}

func TestImmutableTagsOneNode(t *testing.T) {
	n := startNodeWith(t, t.TempDir(), nodeOptions{args: []string{"--config", ptWriteConfig(t, immutableConfig)}})
	ctx := context.Background()
	c := newClient(n.URL())
	defer c.close()
	layer, cfgA, cfgB := []byte("immutable layer"), []byte(`{"image":"a"}`), []byte(`{"image":"b"}`)
	if err := pushImageBlobs(ctx, c, "app", layer, cfgA, cfgB); err != nil {
		t.Fatal(err)
	}
	a, b := stressManifest(cfgA, [][]byte{layer}), stressManifest(cfgB, [][]byte{layer})
	da := digest.FromBytes(a)
	for i := range 2 { // the second push of the same digest is allowed too
		if _, err := c.do(ctx, "PUT", "/v2/app/manifests/v1.2.3", manifestHeader, a, http.StatusCreated); err != nil {
			t.Fatalf("push %d of the same digest: %v", i+1, err)
		}
	}
	r, err := c.do(ctx, "PUT", "/v2/app/manifests/v1.2.3", manifestHeader, b, http.StatusForbidden)
	if err != nil || !strings.Contains(errorCode(r), "DENIED") || !strings.Contains(errorCode(r), "immutable") {
		t.Fatalf("moving an immutable tag: %v %s", err, errorCode(r))
	}
	if r, err := c.do(ctx, "DELETE", "/v2/app/manifests/v1.2.3", nil, nil, http.StatusForbidden); err != nil {
		t.Fatalf("deleting an immutable tag: %v %s", err, errorCode(r))
	}
	if r, err := c.do(ctx, "DELETE", "/v2/app/manifests/"+da.String(), nil, nil, http.StatusForbidden); err != nil {
		t.Fatalf("deleting the manifest of an immutable tag: %v %s", err, errorCode(r))
	}
	if _, got, err := c.getManifest(ctx, "app", "v1.2.3"); err != nil || got != da {
		t.Fatalf("v1.2.3 is %s (%v), want %s", got, err, da)
	}
	// Tags no rule matches move and go as before.
	for _, m := range [][]byte{a, b} {
		if _, err := c.do(ctx, "PUT", "/v2/app/manifests/latest", manifestHeader, m, http.StatusCreated); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.do(ctx, "DELETE", "/v2/app/manifests/latest", nil, nil, http.StatusAccepted); err != nil {
		t.Fatal(err)
	}
}

// TestImmutableTagRace pushes two different manifests under the same new
// immutable tag at once, through two different members, round after
// round: exactly one push wins, the other is refused, and every member
// ends up with the winner's digest.
func TestImmutableTagRace(t *testing.T) {
	cl := startLoopbackCluster(t, 3, clusterOptions{args: []string{"--config", ptWriteConfig(t, immutableConfig)}})
	ctx := context.Background()
	var clients []*client
	for _, m := range cl.members {
		c := newClient(m.URL())
		defer c.close()
		clients = append(clients, c)
	}
	const rounds = 40
	layer := []byte("race layer")
	cfgs := make([][2][]byte, rounds)
	var blobs [][]byte
	blobs = append(blobs, layer)
	for i := range cfgs {
		cfgs[i] = [2][]byte{[]byte(fmt.Sprintf(`{"round":%d,"by":"x"}`, i)), []byte(fmt.Sprintf(`{"round":%d,"by":"y"}`, i))}
		blobs = append(blobs, cfgs[i][0], cfgs[i][1])
	}
	for _, c := range clients { // linked on every member before the race
		if err := pushImageBlobs(ctx, c, "race", blobs...); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	winners := map[string]digest.Digest{}
	for i := range rounds {
		tag := fmt.Sprintf("v1.0.%d", i)
		// Different pairs of members each round.
		x, y := clients[i%3], clients[(i+1)%3]
		ms := [2][]byte{stressManifest(cfgs[i][0], [][]byte{layer}), stressManifest(cfgs[i][1], [][]byte{layer})}
		var wg sync.WaitGroup
		status := [2]int{}
		for k, c := range []*client{x, y} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := c.do(ctx, "PUT", "/v2/race/manifests/"+tag, manifestHeader, ms[k], http.StatusCreated, http.StatusForbidden)
				if err != nil {
					t.Errorf("round %d: %v", i, err)
					return
				}
				status[k] = r.status
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		won := 0
		for k, s := range status {
			if s == http.StatusCreated {
				won++
				winners[tag] = digest.FromBytes(ms[k])
			}
		}
		if won != 1 {
			t.Fatalf("round %d: statuses %v, want exactly one 201 and one 403", i, status)
		}
	}
	logMeasure(t, "%d immutable-tag races through 2 of 3 members: %v", rounds, time.Since(start).Round(time.Millisecond))
	pollUntil(t, 20*time.Second, "every member agrees on every raced tag", func() error {
		for _, c := range clients {
			for tag, want := range winners {
				if _, got, err := c.getManifest(ctx, "race", tag); err != nil || got != want {
					return fmt.Errorf("%s on %s: %s (%v), want %s", tag, c.base, got, err, want)
				}
			}
		}
		return nil
	})
	// And the loser stays refused everywhere, the winner accepted.
	for _, c := range clients {
		for i := range 3 {
			tag := fmt.Sprintf("v1.0.%d", i)
			for k := range 2 {
				m := stressManifest(cfgs[i][k], [][]byte{layer})
				want := http.StatusForbidden
				if digest.FromBytes(m) == winners[tag] {
					want = http.StatusCreated
				}
				if r, err := c.do(ctx, "PUT", "/v2/race/manifests/"+tag, manifestHeader, m, want); err != nil {
					t.Fatalf("%s again on %s: %v %s", tag, c.base, err, errorCode(r))
				}
			}
		}
	}
}
