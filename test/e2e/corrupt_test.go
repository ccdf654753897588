package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCorruptMetadataMember: a member whose metadata.db was damaged while it
// was down (every page's header but the two meta pages overwritten, as a
// bad disk or a copy taken mid-write would leave it) refuses to start with
// a clear error and what to do, never a panic; following the advice (the
// file moved aside) it comes back through its peers, lists every image of
// the cluster, and its new writes reach the others.
func TestCorruptMetadataMember(t *testing.T) {
	c := startLoopbackCluster(t, 3, clusterOptions{replicas: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := newAckLedger()
	n1, n2 := c.members[0], c.members[1]
	for i, m := range c.members {
		if err := newGGCRClient(m.Addr(), l, true).push(ctx, newClusterImage(t, "corrupt/app", fmt.Sprint("v", i), 2, 1024)); err != nil {
			t.Fatal(err)
		}
	}
	pollUntil(t, 20*time.Second, "every member lists the images", func() error { return sameContents(c.live(), nil) })

	n2.kill()
	db := filepath.Join(n2.dataDir, "metadata.db")
	corruptPages(t, db)
	out, err := runServe(n2.Node)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("atoll on a corrupt metadata.db: %v, want exit status 1\n%s", err, out)
	}
	for _, want := range []string{"metadata.db: the metadata database is corrupt", "Move metadata.db aside"} {
		if !strings.Contains(out, want) {
			t.Errorf("atoll on a corrupt metadata.db says %q, want it to say %q", out, want)
		}
	}
	if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
		t.Errorf("atoll on a corrupt metadata.db panicked:\n%s", out)
	}

	if err := os.Rename(db, db+".corrupt"); err != nil {
		t.Fatal(err)
	}
	n2.Restart()
	n2.killed = false
	cl2 := newClient(n2.URL())
	defer cl2.close()
	ready := pollUntil(t, 30*time.Second, "n2 ready", func() error {
		_, err := cl2.do(ctx, http.MethodGet, "/readyz", nil, nil, http.StatusOK)
		return err
	})
	t.Logf("n2 ready %v after it came back without its metadata", ready.Round(time.Millisecond))
	if err := sameContents(c.live(), nil); err != nil {
		t.Errorf("after n2 came back: %v", err)
	}
	later := newClusterImage(t, "corrupt/app", "later", 1, 1024)
	if err := newGGCRClient(n2.Addr(), l, true).push(ctx, later); err != nil {
		t.Fatalf("push through n2 after it came back: %v", err)
	}
	cl1 := newClient(n1.URL())
	defer cl1.close()
	pollUntil(t, 10*time.Second, "n1 resolves what n2 took after it came back", func() error {
		_, err := cl1.do(ctx, http.MethodHead, "/v2/corrupt/app/manifests/later", manifestAccept, nil, http.StatusOK)
		return err
	})
	pollUntil(t, 10*time.Second, "every member lists the same", func() error { return sameContents(c.live(), nil) })
}

// TestCorruptMetadataSingle: a registry on its own refuses a corrupt
// metadata.db with a clear error that says the manifests are in it only,
// never a panic.
func TestCorruptMetadataSingle(t *testing.T) {
	n := startNode(t, filepath.Join(t.TempDir(), "data"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := newGGCRClient(n.Addr(), newAckLedger(), true).push(ctx, newClusterImage(t, "corrupt/one", "v1", 2, 1024)); err != nil {
		t.Fatal(err)
	}
	n.Stop()
	corruptPages(t, filepath.Join(n.dataDir, "metadata.db"))
	out, err := runServe(n)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("atoll on a corrupt metadata.db: %v, want exit status 1\n%s", err, out)
	}
	if !strings.Contains(out, "the metadata database is corrupt") || !strings.Contains(out, "restore metadata.db from a backup") {
		t.Errorf("atoll on a corrupt metadata.db says %q, want the corruption and how to restore", out)
	}
	if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
		t.Errorf("atoll on a corrupt metadata.db panicked:\n%s", out)
	}
}

// corruptPages overwrites the header of every page of the bbolt file at
// path but its two meta pages (4 KiB pages).
func corruptPages(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	garbage := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 4)
	for off := 2 * page; off+len(garbage) <= len(b); off += page {
		copy(b[off:], garbage)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// runServe runs n's serve command line once more, to its exit (within 30s),
// and returns what it printed.
func runServe(n *Node) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, atollBin, n.serveArgs()...)
	cmd.Env = append(cleanEnv(), n.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
