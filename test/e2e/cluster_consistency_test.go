package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestClusterConcurrentTag races two pushes of the same tag, with
// different manifests, through two members, round after round, and checks
// that after each round every member resolves the tag to the same digest,
// one of the two that round pushed.
func TestClusterConcurrentTag(t *testing.T) {
	c := startLoopbackCluster(t, 3, clusterOptions{replicas: 2})
	l := newAckLedger()
	a, b := c.members[0], c.members[1]
	ica, icb := newGGCRClient(a.Addr(), l, true), newGGCRClient(b.Addr(), l, true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const rounds, repo, tag = 8, "race/app", "latest"
	wins := map[string]int{}
	var last clusterImage
	for round := range rounds {
		x := newClusterImage(t, repo, tag, 2, 4<<10)
		y := newClusterImage(t, repo, tag, 2, 4<<10)
		// Blobs and manifests first, by digest, so that the race is
		// between the two tag writes alone.
		if err := ica.pushByDigest(ctx, x); err != nil {
			t.Fatal(err)
		}
		if err := icb.pushByDigest(ctx, y); err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		errs := make(chan error, 2)
		go func() { <-start; errs <- ica.tag(ctx, x, tag) }()
		go func() { <-start; errs <- icb.tag(ctx, y, tag) }()
		close(start)
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		var winner string
		settle := pollUntil(t, 10*time.Second, fmt.Sprintf("round %d: every member resolves %s:%s alike", round, repo, tag), func() error {
			got, err := resolveTagEverywhere(ctx, c.members, repo, tag)
			if err != nil {
				return err
			}
			switch got {
			case x.digest.String():
				winner, last = "via "+a.name, x
			case y.digest.String():
				winner, last = "via "+b.name, y
			default:
				return fmt.Errorf("every member resolves it to %s, pushed %s (via %s) and %s (via %s)", got, x.digest, a.name, y.digest, b.name)
			}
			return nil
		})
		wins[winner]++
		t.Logf("round %d: the push %s won; all members agreed %v after both 201s", round, winner, settle.Round(time.Millisecond))
	}
	// No member flips back later.
	if got, err := resolveTagEverywhere(ctx, c.members, repo, tag); err != nil || got != last.digest.String() {
		t.Errorf("after the last round: %s:%s resolves to %q (%v), settled on %s", repo, tag, got, err, last.digest)
	}
	logMeasure(t, "concurrent tag pushes, %d rounds: winners %v", rounds, wins)
	pullAndValidate(t, []clusterImage{last}, memberGGCRClients(c.members, l)...)
	l.verify(t, memberBases(c.members))
}

// resolveTagEverywhere returns the digest every member resolves repo:tag to, or an
// error naming the members that disagree.
func resolveTagEverywhere(ctx context.Context, ms []*clusterMember, repo, tag string) (string, error) {
	seen := map[string][]string{}
	var first string
	for _, m := range ms {
		c := newClient(m.URL())
		r, err := c.do(ctx, http.MethodHead, "/v2/"+repo+"/manifests/"+tag, manifestAccept, nil, http.StatusOK)
		c.close()
		if err != nil {
			return "", fmt.Errorf("%s: %w", m.name, err)
		}
		d := r.header.Get("Docker-Content-Digest")
		if first == "" {
			first = d
		}
		seen[d] = append(seen[d], m.name)
	}
	if len(seen) > 1 {
		return "", fmt.Errorf("members disagree on %s:%s: %v", repo, tag, seen)
	}
	return first, nil
}
