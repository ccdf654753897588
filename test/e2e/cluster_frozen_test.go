package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/ring"
)

// TestClusterFrozenMember SIGSTOPs one member of three, pushes through
// another, SIGCONTs it and checks that it catches up: the same catalog,
// tags and manifests as the others, every image pullable through it.
func TestClusterFrozenMember(t *testing.T) {
	c := startLoopbackCluster(t, 3, clusterOptions{replicas: 2})
	l := newAckLedger()
	pusher, other, frozen := c.members[0], c.members[1], c.members[2]
	ic := newGGCRClient(pusher.Addr(), l, true)

	before := newClusterImages(t, "frozen/before", 2, 32<<10)
	pushAllImages(t, ic, before)
	pollUntil(t, 10*time.Second, "every member lists the first images", func() error {
		return sameContents(c.members, contentsOfImages(before))
	})

	frozen.freeze()
	froze := time.Now()
	// New repositories, and a tag the frozen member knows moved elsewhere.
	during := newClusterImages(t, "frozen/during", 3, 32<<10)
	moved := newClusterImage(t, before[0].repo, before[0].tag, 3, 32<<10)
	during = append(during, moved)
	for _, ti := range during {
		took := pushAllImages(t, ic, []clusterImage{ti})
		t.Logf("pushed %s:%s (%d blobs) through %s with %s frozen in %v", ti.repo, ti.tag, len(ti.blobs), pusher.name, frozen.name, took.Round(time.Millisecond))
	}
	pushed := time.Since(froze)
	current := append([]clusterImage{before[1]}, during...)
	dead := pollUntil(t, 15*time.Second, pusher.name+" sees "+frozen.name+" dead", func() error {
		s, err := pusher.status()
		if err != nil {
			return err
		}
		if st := s.state(frozen.name); st != "dead" {
			return fmt.Errorf("it is %q", st)
		}
		return nil
	}) + pushed
	// The others serve everything while it is frozen.
	pullAndValidate(t, current, memberGGCRClients([]*clusterMember{pusher, other}, l)...)

	frozen.thaw()
	thawed := time.Now()
	caughtUp := pollUntil(t, 30*time.Second, frozen.name+" lists what the others list", func() error {
		return sameContents(c.members, contentsOfImages(current))
	})
	alive := c.waitFormed() + caughtUp
	pullAndValidate(t, current, newGGCRClient(frozen.Addr(), l, true))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := newGGCRClient(frozen.Addr(), l, true).pull(ctx, before[0], before[0].digest.String()); err != nil {
		t.Errorf("the image whose tag moved, by digest: %v", err)
	}
	all := append(append([]clusterImage(nil), before...), during...)
	_, counts, _ := waitPlaced(t, 30*time.Second, c.members, imageBlobs(all), 2)
	placed := time.Since(thawed)
	logMeasure(t, "SIGSTOP of %s for %v (dead to %s within %v); %d pushes took %v; "+
		"after SIGCONT it listed everything in %v, everyone saw it alive in %v, placement settled in %v (copies %v)",
		frozen.name, thawed.Sub(froze).Round(time.Millisecond), pusher.name, dead.Round(time.Millisecond), len(during), pushed.Round(time.Millisecond),
		caughtUp.Round(time.Millisecond), alive.Round(time.Millisecond), placed.Round(time.Millisecond), counts)
	l.verify(t, memberBases(c.members))
}

func TestClusterFrozenOwnerRead(t *testing.T) {
	for _, routing := range []string{"proxy", "redirect"} {
		t.Run(routing, func(t *testing.T) {
			testFrozenOwnerRead(t, routing)
		})
	}
}

func testFrozenOwnerRead(t *testing.T, routing string) {
	c := startLoopbackCluster(t, 3, clusterOptions{replicas: 2, routing: routing})
	frozen, asked := c.members[2], c.members[1]
	// Images until at least three blobs have the frozen member first and
	// the asked member nowhere among their two owners.
	r := ring.New(ring.Config{}, memberNames(c.members))
	var images []clusterImage
	type target struct {
		repo string
		d    digest.Digest
	}
	var targets []target
	for i := 0; len(targets) < 3; i++ {
		ti := newClusterImage(t, fmt.Sprintf("frozenread/%d", i), "v1", 3, 16<<10)
		images = append(images, ti)
		for _, d := range ti.blobs {
			if o := r.Owners(d, 2); o[0] == frozen.name && o[1] != asked.name {
				targets = append(targets, target{ti.repo, d})
			}
		}
	}
	l := newAckLedger()
	pushAllImages(t, newGGCRClient(c.members[0].Addr(), l, true), images)
	waitPlaced(t, 15*time.Second, c.members, imageBlobs(images), 2)

	frozen.freeze()
	froze := time.Now()
	mc := newClient(asked.URL()) // follows redirects
	defer mc.close()
	for _, tg := range targets {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		resp, err := mc.do(ctx, http.MethodGet, "/v2/"+tg.repo+"/blobs/"+tg.d.String(), nil, nil, http.StatusOK)
		cancel()
		switch {
		case err != nil:
			t.Errorf("GET blob %.19s through %s, %v after freezing its first owner %s: %v", tg.d, asked.name, time.Since(froze).Round(time.Millisecond), frozen.name, err)
		case digest.FromBytes(resp.body) != tg.d:
			t.Errorf("GET blob %s through %s: content hashes to %s", tg.d, asked.name, digest.FromBytes(resp.body))
		default:
			t.Logf("GET blob %.19s through %s (first owner %s frozen): 200 in %v", tg.d, asked.name, frozen.name, time.Since(start).Round(time.Millisecond))
		}
	}
	frozen.thaw()
	c.waitFormed()
	l.verify(t, memberBases(c.members))
}
