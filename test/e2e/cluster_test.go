package e2e

import (
	"fmt"
	"testing"
	"time"
)

// Cluster tests: real atoll processes on loopback forming a cluster by
// gossip, replicating metadata and placing blobs over gRPC. Each test
// records every push the registry acknowledged (ackLedger) and checks at
// the end that all of it is readable through every live member.

// TestClusterPushPull pushes images through one member of three (R=2) and
// checks that every member serves them, lists the same, and that each blob
// ends up on exactly two members, the ones the ring names.
func TestClusterPushPull(t *testing.T) {
	c := startLoopbackCluster(t, 3, clusterOptions{replicas: 2})
	l := newAckLedger()
	images := newClusterImages(t, "pushpull", 5, 48<<10)
	took := pushAllImages(t, newGGCRClient(c.members[0].Addr(), l, true), images)
	t.Logf("pushed %d images (%d blobs) through %s in %v", len(images), len(imageBlobs(images)), c.members[0].name, took.Round(time.Millisecond))

	pullAndValidate(t, images, memberGGCRClients(c.members, l)...)

	want := contentsOfImages(images)
	pollUntil(t, 10*time.Second, "catalog and tags identical on every member", func() error {
		return sameContents(c.members, want)
	})

	blobs := imageBlobs(images)
	if got := l.blobDigests(); len(got) != len(blobs) {
		t.Errorf("ledger holds %d acknowledged blobs, the images have %d", len(got), len(blobs))
	}
	_, counts, settle := waitPlaced(t, 15*time.Second, c.members, blobs, 2)
	t.Logf("placement settled %v after the last push: %d blobs, copies per member %v", settle.Round(time.Millisecond), len(blobs), counts)
	checkStatsAgree(t, c.members)
	l.verify(t, memberBases(c.members))
}

// TestClusterKillMember SIGKILLs one member of three (R=2) and checks that
// the survivors serve everything at once and restore two copies of every
// blob within 30s.
func TestClusterKillMember(t *testing.T) {
	c := startLoopbackCluster(t, 3, clusterOptions{replicas: 2})
	l := newAckLedger()
	images := newClusterImages(t, "kill", 5, 48<<10)
	pushAllImages(t, newGGCRClient(c.members[0].Addr(), l, true), images)
	blobs := imageBlobs(images)
	before, _, _ := waitPlaced(t, 15*time.Second, c.members, blobs, 2)

	victim := c.members[2]
	lost := 0
	for _, holders := range before {
		for _, h := range holders {
			if h == victim.name {
				lost++
			}
		}
	}
	victim.kill()
	killed := time.Now()
	survivors := c.live()

	// Straight away, before gossip has declared the victim dead: reads
	// through each survivor, and one more push.
	pullAndValidate(t, images, memberGGCRClients(survivors, l)...)
	t.Logf("every image pulled and validated through %v %v after the kill", memberNames(survivors), time.Since(killed).Round(time.Millisecond))
	late := newClusterImage(t, "kill/late", "v1", 3, 48<<10)
	took := pushAllImages(t, newGGCRClient(survivors[1].Addr(), l, true), []clusterImage{late})
	t.Logf("pushed %s:%s through %s %v after the kill, in %v", late.repo, late.tag, survivors[1].name, time.Since(killed).Round(time.Millisecond), took.Round(time.Millisecond))
	images = append(images, late)
	blobs = imageBlobs(images)

	var detected time.Duration
	pollUntil(t, 30*time.Second, fmt.Sprintf("every blob on 2 of %v again", memberNames(survivors)), func() error {
		if detected == 0 {
			if s, err := survivors[0].status(); err == nil && s.state(victim.name) == "dead" {
				detected = time.Since(killed)
			}
		}
		_, _, err := checkPlacement(survivors, blobs, 2, true)
		return err
	})
	restored := time.Since(killed)
	logMeasure(t, "kill -9 of %s (held %d of %d copies): %s saw it dead after %v; every blob on 2 live members after %v",
		victim.name, lost, 2*len(blobs), survivors[0].name, detected.Round(time.Millisecond), restored.Round(time.Millisecond))

	pollUntil(t, 10*time.Second, "survivors list the same", func() error {
		return sameContents(survivors, contentsOfImages(images))
	})
	pullAndValidate(t, images, memberGGCRClients(survivors, l)...)
	l.verify(t, memberBases(survivors))
}

// TestClusterJoinLive adds a fourth member to three holding about 40 blobs
// and checks that it lists everything, takes about a quarter of the copies,
// and that every blob keeps exactly R copies.
func TestClusterJoinLive(t *testing.T) {
	c := startLoopbackCluster(t, 3, clusterOptions{replicas: 2})
	l := newAckLedger()
	var images []clusterImage
	for i := 0; len(imageBlobs(images)) < 40; i++ {
		images = append(images, newClusterImage(t, fmt.Sprintf("join/%d", i%4), fmt.Sprintf("v%d", i), 2+i%3, 8<<10))
	}
	pushAllImages(t, newGGCRClient(c.members[1].Addr(), l, true), images)
	blobs := imageBlobs(images)
	_, before, _ := waitPlaced(t, 15*time.Second, c.members, blobs, 2)

	joined := time.Now()
	newcomer := c.add(c.members[1], "")
	c.waitFormed()
	formed := time.Since(joined)
	want := contentsOfImages(images)
	listed := pollUntil(t, 15*time.Second, newcomer.name+" lists what the others list", func() error {
		return sameContents(c.members, want)
	}) + formed
	// Reads through every member while blobs move to the newcomer.
	pullAndValidate(t, images, memberGGCRClients(c.members, l)...)
	t.Logf("every image pulled and validated through all 4 members %v after the join", time.Since(joined).Round(time.Millisecond))

	_, after, _ := waitPlaced(t, 30*time.Second, c.members, blobs, 2)
	settled := time.Since(joined)
	copies := 2 * len(blobs)
	share := float64(after[newcomer.name]) / float64(copies)
	logMeasure(t, "join of %s: alive everywhere after %v, lists everything after %v, placement settled after %v; "+
		"it holds %d of %d copies (%.1f%%; ideal 25%%); copies per member before %v, after %v",
		newcomer.name, formed.Round(time.Millisecond), listed.Round(time.Millisecond), settled.Round(time.Millisecond),
		after[newcomer.name], copies, 100*share, before, after)
	if share < 0.10 || share > 0.45 {
		t.Errorf("%s holds %.1f%% of the copies, want between 10%% and 45%%", newcomer.name, 100*share)
	}

	pullAndValidate(t, images, newGGCRClient(newcomer.Addr(), l, true))
	checkStatsAgree(t, c.members)
	l.verify(t, memberBases(c.members))
}
