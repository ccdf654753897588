package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fastTrimConfig has members compare metadata every 100ms, so they trim
// their logs every 3s (30 sync intervals).
const fastTrimConfig = "version: 0.1\ncluster:\n  syncinterval: 100ms\n"

// TestJoinAfterTrim: once every member trimmed its metadata log of what
// all had applied, a new member cannot replay it from the start; it joins
// through a snapshot of a member's state, then the log after it, becomes
// ready and lists every tag of the cluster, each resolving alike.
func TestJoinAfterTrim(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(conf, []byte(fastTrimConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	c := startLoopbackCluster(t, 3, clusterOptions{replicas: 2, args: []string{"--config", conf}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := newAckLedger()
	var images []clusterImage
	for i, m := range c.members {
		ic := newGGCRClient(m.Addr(), l, true)
		for j := range 3 {
			ti := newClusterImage(t, fmt.Sprintf("trim/r%d", j), fmt.Sprintf("v%d", i), 1, 512)
			if err := ic.push(ctx, ti); err != nil {
				t.Fatal(err)
			}
			images = append(images, ti)
		}
	}
	trimmed := pollUntil(t, 30*time.Second, "every member trimmed its metadata log", func() error {
		for _, m := range c.members {
			if !strings.Contains(m.log.String(), "trimmed the metadata log") {
				return fmt.Errorf("%s has not trimmed", m.name)
			}
		}
		return nil
	})
	t.Logf("every member trimmed its log %v after the last push", trimmed.Round(time.Millisecond))

	n4 := c.add(c.members[0], "")
	cl := newClient(n4.URL())
	defer cl.close()
	ready := pollUntil(t, 30*time.Second, "n4 ready", func() error {
		_, err := cl.do(ctx, http.MethodGet, "/readyz", nil, nil, http.StatusOK)
		return err
	})
	if !strings.Contains(n4.log.String(), "installed a metadata snapshot") {
		t.Errorf("n4 became ready without installing a snapshot")
	}
	t.Logf("n4 ready %v after it first answered", ready.Round(time.Millisecond))
	if err := sameContents(c.live(), contentsOfImages(images)); err != nil {
		t.Error(err)
	}
}

// horizonConfig is fastTrimConfig with a horizon of 2s: a member gone
// longer no longer holds trimming back.
const horizonConfig = fastTrimConfig + "  horizon: 2s\n"

// tombstonesDropped matches the log line of a trim round that dropped
// tombstones.
var tombstonesDropped = regexp.MustCompile(`trimmed the metadata log.*tombstones"?[=:][1-9]`)

// TestAwayPastHorizon: a member killed, and away longer than the horizon
// while a tag is deleted and an image pushed, no longer holds trimming back:
// the others trim their logs and drop the tag's tombstone. Restarted, it
// comes back through a snapshot, becomes ready and converges: the new
// image resolves on it and the deleted tag stays deleted.
func TestAwayPastHorizon(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(conf, []byte(horizonConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	c := startLoopbackCluster(t, 3, clusterOptions{replicas: 2, args: []string{"--config", conf}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := newAckLedger()
	n1, n2, n3 := c.members[0], c.members[1], c.members[2]
	ic1 := newGGCRClient(n1.Addr(), l, true)
	for _, ref := range [][2]string{{"away/a", "v1"}, {"away/b", "v1"}, {"away/b", "v2"}} {
		if err := ic1.push(ctx, newClusterImage(t, ref[0], ref[1], 1, 512)); err != nil {
			t.Fatal(err)
		}
	}
	pollUntil(t, 20*time.Second, "every member lists the images", func() error { return sameContents(c.live(), nil) })

	n3.kill()
	cl1 := newClient(n1.URL())
	defer cl1.close()
	if _, err := cl1.do(ctx, http.MethodDelete, "/v2/away/b/manifests/v2", nil, nil, http.StatusAccepted); err != nil {
		t.Fatal(err)
	}
	later := newClusterImage(t, "away/c", "v1", 1, 512)
	if err := newGGCRClient(n2.Addr(), l, true).push(ctx, later); err != nil {
		t.Fatal(err)
	}
	dropped := pollUntil(t, 60*time.Second, "n1 dropped the tombstone of away/b:v2", func() error {
		if !tombstonesDropped.MatchString(n1.log.String()) {
			return fmt.Errorf("no trim round of n1 dropped a tombstone")
		}
		return nil
	})
	t.Logf("n1 dropped the tombstone %v after the delete", dropped.Round(time.Millisecond))

	before := len(n3.log.String())
	n3.Restart()
	n3.killed = false
	cl3 := newClient(n3.URL())
	defer cl3.close()
	ready := pollUntil(t, 30*time.Second, "n3 ready", func() error {
		_, err := cl3.do(ctx, http.MethodGet, "/readyz", nil, nil, http.StatusOK)
		return err
	})
	t.Logf("n3 ready %v after it first answered again", ready.Round(time.Millisecond))
	if !strings.Contains(n3.log.String()[before:], "installed a metadata snapshot") {
		t.Errorf("n3 came back without installing a snapshot")
	}
	pollUntil(t, 10*time.Second, "every member lists the same", func() error { return sameContents(c.live(), nil) })
	for _, m := range c.live() {
		cl := newClient(m.URL())
		if r, err := cl.do(ctx, http.MethodHead, "/v2/away/b/manifests/v2", manifestAccept, nil, http.StatusNotFound); err != nil {
			t.Errorf("%s: away/b:v2, deleted: %v", m.name, err)
		} else if r.status != http.StatusNotFound {
			t.Errorf("%s: away/b:v2 answered %d", m.name, r.status)
		}
		if r, err := cl.do(ctx, http.MethodHead, "/v2/away/c/manifests/v1", manifestAccept, nil, http.StatusOK); err != nil || r.header.Get("Docker-Content-Digest") != later.digest.String() {
			t.Errorf("%s: away/c:v1: %v", m.name, err)
		}
		cl.close()
	}
}
