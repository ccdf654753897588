package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestClusterSecret starts three members sharing a cluster secret and a
// fourth with another secret that tries to join them: it never appears
// alive to them. A member's internal blob endpoint refuses requests
// without the member token.
func TestClusterSecret(t *testing.T) {
	const secret = "correct horse battery staple"
	c := startLoopbackCluster(t, 3, clusterOptions{replicas: 2, secret: secret})
	l := newAckLedger()
	images := newClusterImages(t, "secret", 2, 32<<10)
	pushAllImages(t, newGGCRClient(c.members[0].Addr(), l, true), images)
	// Members lacking a blob fetch it from another with the token.
	pullAndValidate(t, images, memberGGCRClients(c.members, l)...)
	members := c.live()

	intruder := c.add(c.members[0], "another secret")
	observed := time.Now()
	// Watch for a few seconds, and at least until the intruder has tried
	// and failed to join twice, that nobody lets it in.
	var failedJoins int
	pollUntil(t, 20*time.Second, "the intruder tried to join twice, watched for 4s", func() error {
		for _, m := range members {
			s, err := m.status()
			if err != nil {
				t.Fatal(err)
			}
			if st := s.state(intruder.name); st == "alive" || st == "suspect" {
				t.Fatalf("%s, with another secret, is %s to %s after %v", intruder.name, st, m.name, time.Since(observed).Round(time.Millisecond))
			}
		}
		s, err := intruder.status()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range members {
			if st := s.state(m.name); st == "alive" || st == "suspect" {
				t.Fatalf("%s, with another secret, sees %s %s", intruder.name, m.name, st)
			}
		}
		failedJoins = strings.Count(intruder.log.String(), "cluster join failed")
		if failedJoins < 2 || time.Since(observed) < 4*time.Second {
			return fmt.Errorf("%d failed joins in the intruder's log after %v", failedJoins, time.Since(observed).Round(time.Millisecond))
		}
		return nil
	})
	t.Logf("%s (another secret) stayed out for %v, %d failed join attempts", intruder.name, time.Since(observed).Round(time.Millisecond), failedJoins)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := newClient(intruder.URL()).do(ctx, http.MethodGet, "/readyz", nil, nil, http.StatusServiceUnavailable); err != nil {
		t.Errorf("readyz of the member that cannot join: %v", err)
	} else {
		t.Logf("readyz of the member that cannot join: %d %s", r.status, strings.TrimSpace(string(r.body)))
	}

	// A blob held by the first member, asked for on its member endpoint.
	p, _, err := placementOf(members[:1])
	if err != nil || len(p) == 0 {
		t.Fatalf("%s holds no blob (%v)", members[0].name, err)
	}
	var held string
	for d := range p {
		held = d.String()
		break
	}
	mc := newClient(members[0].URL())
	defer mc.close()
	for _, h := range []http.Header{nil, {"Atoll-Cluster-Token": {"wrong"}}, {"Atoll-Cluster-Token": {""}}} {
		if _, err := mc.do(ctx, http.MethodGet, "/_atoll/v1/blobs/"+held, h, nil, http.StatusUnauthorized); err != nil {
			t.Errorf("member blob endpoint with token header %q: %v", h.Get("Atoll-Cluster-Token"), err)
		}
	}
	// The registry API itself is not behind the cluster token.
	if _, err := mc.do(ctx, http.MethodGet, "/v2/"+images[0].repo+"/blobs/"+images[0].blobs[0].String(), nil, nil, http.StatusOK); err != nil {
		t.Errorf("registry blob GET on a secret cluster: %v", err)
	}

	l.verify(t, memberBases(members))
}
