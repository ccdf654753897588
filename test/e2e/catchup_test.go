package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestJoiningMemberNever404s is issue 12's repro: j/app:v3 is pushed
// through n2 of three members, n2 is killed, and n4 starts joined to n1.
// From n4's first answer until after it is ready, every GET of j/app:v3 on
// n4 answers 200 (served by n4 once caught up, passed to a caught-up member
// before) or 503 with Retry-After, never 404; once ready, n4 lists every
// tag of the cluster and resolves each alike.
func TestJoiningMemberNever404s(t *testing.T) {
	c := startLoopbackCluster(t, 3, clusterOptions{replicas: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := newAckLedger()
	n1, n2 := c.members[0], c.members[1]
	// Some history first, so that catching up takes a while.
	ic1 := newGGCRClient(n1.Addr(), l, true)
	for i := range 20 {
		if err := ic1.push(ctx, newClusterImage(t, fmt.Sprintf("j/old%d", i%4), fmt.Sprintf("t%d", i), 1, 256)); err != nil {
			t.Fatal(err)
		}
	}
	v3 := newClusterImage(t, "j/app", "v3", 2, 1<<10)
	if err := newGGCRClient(n2.Addr(), l, true).push(ctx, v3); err != nil {
		t.Fatal(err)
	}
	n2.kill()

	n4 := c.add(n1, "")
	cl := newClient(n4.URL())
	defer cl.close()
	var (
		mu     sync.Mutex
		counts = map[int]int{}
		bad    []string
	)
	probe := func() {
		r, err := cl.do(ctx, http.MethodGet, "/v2/j/app/manifests/v3", manifestAccept, nil)
		if err != nil && r == nil {
			mu.Lock()
			bad = append(bad, err.Error())
			mu.Unlock()
			return
		}
		mu.Lock()
		defer mu.Unlock()
		counts[r.status]++
		switch {
		case r.status == http.StatusOK && r.header.Get("Docker-Content-Digest") != v3.digest.String():
			bad = append(bad, "200 with digest "+r.header.Get("Docker-Content-Digest"))
		case r.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "":
			bad = append(bad, "503 without Retry-After: "+string(r.body))
		case r.status != http.StatusOK && r.status != http.StatusServiceUnavailable:
			bad = append(bad, fmt.Sprintf("%d %s", r.status, r.body))
		}
	}
	start := time.Now()
	var readyAfter time.Duration
	reasons := map[string]bool{} // what /readyz said while n4 was not ready
	pollUntil(t, 60*time.Second, "n4 ready", func() error {
		probe()
		if r, err := cl.do(ctx, http.MethodGet, "/readyz", nil, nil, http.StatusOK); err != nil {
			if r != nil && r.status == http.StatusServiceUnavailable {
				reasons[strings.TrimSpace(string(r.body))] = true
			}
			return err
		}
		readyAfter = time.Since(start)
		return nil
	})
	for range 20 {
		probe()
	}
	for reason := range reasons {
		t.Logf("/readyz on n4 before it was ready: %s", reason)
		if !strings.HasPrefix(reason, "not joined") && !strings.HasPrefix(reason, "catching up with the cluster's metadata: ") {
			t.Errorf("/readyz on n4 before it was ready said %q, want it joining or catching up, and how far", reason)
		}
	}
	mu.Lock()
	t.Logf("n4 ready %v after it first answered; GET j/app:v3 on n4 answered %v", readyAfter.Round(time.Millisecond), counts)
	for _, b := range bad {
		t.Errorf("GET j/app:v3 on n4: %s", b)
	}
	mu.Unlock()
	if err := sameContents(c.live(), nil); err != nil {
		t.Errorf("after n4 is ready: %v", err)
	}
}
