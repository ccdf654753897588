package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// TestWholeClusterStop sends SIGTERM to every member of a 3-member cluster
// at once, as `docker compose down` or a host shutdown does. Each member
// must exit 0: with no member staying, the hand-off is skipped rather than
// failed, and the leave cannot time out.
func TestWholeClusterStop(t *testing.T) {
	c := startLoopbackCluster(t, 3, clusterOptions{replicas: 2})
	pushRandomBlobs(t, c.members[0], 15)

	start := time.Now()
	for _, m := range c.members {
		if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("SIGTERM %s: %v", m.name, err)
		}
	}
	deadline := time.After(40 * time.Second)
	for _, m := range c.members {
		select {
		case <-m.exited:
		case <-deadline:
			t.Fatalf("%s did not exit within 40s of SIGTERM", m.name)
		}
	}
	took := time.Since(start)
	for _, m := range c.members {
		if m.waitErr != nil {
			t.Errorf("%s exited with %v", m.name, m.waitErr)
		}
		log := m.log.String()
		for _, bad := range []string{"hand-off incomplete", "timeout waiting for leave broadcast"} {
			if strings.Contains(log, bad) {
				t.Errorf("%s logged %q", m.name, bad)
			}
		}
	}
	t.Logf("3 members stopped together in %v", took.Round(time.Millisecond))
}

// TestMemberStopHandsOff stops one member of three: it hands its blobs off
// to the two that stay and exits 0, and they hold every blob.
func TestMemberStopHandsOff(t *testing.T) {
	c := startLoopbackCluster(t, 3, clusterOptions{replicas: 2})
	want := pushRandomBlobs(t, c.members[0], 15)
	leaving := c.members[2]
	leaving.Stop() // fails the test unless it exits 0
	for _, s := range []string{"handing off blobs before leaving", "left cluster"} {
		if !strings.Contains(leaving.log.String(), s) {
			t.Errorf("%s did not log %q", leaving.name, s)
		}
	}
	if strings.Contains(leaving.log.String(), "hand-off incomplete") {
		t.Errorf("%s: hand-off incomplete", leaving.name)
	}
	_, _, took := waitPlaced(t, 20*time.Second, c.members[:2], want, 2)
	t.Logf("every blob on both staying members %v after the stop", took.Round(time.Millisecond))
}

// pushRandomBlobs pushes n blobs of 64 KiB through m and returns their
// digests.
func pushRandomBlobs(t *testing.T, m *clusterMember, n int) map[digest.Digest]bool {
	t.Helper()
	cl := newClient(m.URL())
	defer cl.close()
	want := map[digest.Digest]bool{}
	for i := range n {
		data := make([]byte, 64<<10)
		_, _ = rand.Read(data)
		if err := cl.pushMonolithic(context.Background(), fmt.Sprintf("stop/r%d", i%3), data); err != nil {
			t.Fatal(err)
		}
		want[digest.FromBytes(data)] = true
	}
	return want
}
