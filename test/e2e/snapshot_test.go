package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
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
