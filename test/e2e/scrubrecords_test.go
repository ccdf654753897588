package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// Manifest records: bbolt keeps no checksum of a value, so a byte flipped
// in metadata.db is served as it is. The damage is made by hand, with the
// member stopped: one byte of a manifest's JSON, in every copy the file
// holds (pages bbolt freed may hold old ones).

// flipRecord flips a byte in the middle of every copy of manifest ti's
// bytes in the metadata.db of dataDir.
func flipRecord(t *testing.T, dataDir string, ti clusterImage) digest.Digest {
	t.Helper()
	raw, err := ti.img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dataDir, "metadata.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, raw) {
		t.Fatalf("%s does not hold the manifest of %s", path, ti.repo)
	}
	for at := bytes.Index(b, raw); at >= 0; at = bytes.Index(b, raw) {
		b[at+len(raw)/2] ^= 0x01
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return digest.Digest(ti.digest.String())
}

// manifestDigest GETs manifest d of repo and returns what its body hashes
// to; the status must be want.
func manifestDigest(ctx context.Context, t *testing.T, c *client, repo string, d digest.Digest, want int) digest.Digest {
	t.Helper()
	resp, err := c.do(ctx, http.MethodGet, "/v2/"+repo+"/manifests/"+d.String(), manifestAccept, nil, want)
	if err != nil {
		t.Fatal(err)
	}
	return digest.FromBytes(resp.body)
}

// TestScrubRecordsCluster: a member whose record of a manifest went bad
// serves the bad bytes until a scrub; the scrub finds it and replaces it
// with another member's good record, before the command returns. Every
// image then pulls whole from every member.
func TestScrubRecordsCluster(t *testing.T) {
	c := startLoopbackCluster(t, 3, clusterOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	images := newClusterImages(t, "scrubrec/app", 2, 1024)
	pushAllImages(t, newGGCRClient(c.members[0].Addr(), newAckLedger(), true), images)
	pollUntil(t, 20*time.Second, "every member lists the images", func() error { return sameContents(c.live(), nil) })

	n2 := c.members[1]
	n2.kill()
	bad := flipRecord(t, n2.dataDir, images[0])
	n2.Restart()
	n2.killed = false
	pollUntil(t, 30*time.Second, "every member ready", func() error { return allReady(c.live()) })
	cl2 := newClient(n2.URL())
	defer cl2.close()
	if got := manifestDigest(ctx, t, cl2, images[0].repo, bad, http.StatusOK); got == bad {
		t.Fatal("n2 serves the manifest whole: the test damaged nothing")
	}

	out, ok := runScrub(t, c.members[0].URL())
	t.Logf("atoll scrub:\n%s", out)
	if !ok || !strings.Contains(out, "manifest record "+bad.String()) || strings.Count(out, "replaced by the good record of n") != 1 ||
		!strings.Contains(out, "and 2 manifest records") {
		t.Errorf("atoll scrub exited 0: %v; want it to replace n2's record of %s from another member", ok, bad)
	}
	if got := manifestDigest(ctx, t, cl2, images[0].repo, bad, http.StatusOK); got != bad {
		t.Errorf("n2 serves manifest %s as %s after the scrub", bad, got)
	}
	pullAndValidate(t, images, memberGGCRClients(c.members, newAckLedger())...)
	if out, ok := runScrub(t, c.members[0].URL()); !ok || strings.Count(out, ", 0 bad\n") != 3 {
		t.Errorf("scrub after the repair: exited 0: %v; want 0 bad on each member:\n%s", ok, out)
	}
}

// TestScrubRecordsSingleNode: on a member on its own a bad record has
// nowhere to come from: the scrub reports it lost with its repository (and
// in the metrics), it answers 404 rather than bad bytes, and a push of the
// image writes it again (go-containerregistry pushes it, as the registry
// says it has no such manifest).
func TestScrubRecordsSingleNode(t *testing.T) {
	debug := freeAddr(t)
	n := startNodeWith(t, filepath.Join(t.TempDir(), "data"), nodeOptions{args: []string{"--debug-addr", debug}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ic := newGGCRClient(n.Addr(), newAckLedger(), true)
	images := newClusterImages(t, "scrubrec/one", 2, 1024)
	pushAllImages(t, ic, images)
	n.Stop()
	bad := flipRecord(t, n.dataDir, images[1])
	n.Restart()
	c := newClient(n.URL())
	defer c.close()
	if got := manifestDigest(ctx, t, c, images[1].repo, bad, http.StatusOK); got == bad {
		t.Fatal("the manifest is served whole: the test damaged nothing")
	}

	out, ok := runScrub(t, n.URL())
	t.Logf("atoll scrub:\n%s", out)
	if ok || !strings.Contains(out, "manifest record "+bad.String()) || !strings.Contains(out, "LOST: no other member to copy it from; linked by "+images[1].repo) {
		t.Errorf("atoll scrub exited 0: %v; want it to fail, naming %s and its repository %s", ok, bad, images[1].repo)
	}
	manifestDigest(ctx, t, c, images[1].repo, bad, http.StatusNotFound)
	metric := `atoll_scrub_bad_manifest_records_total{outcome="lost"}`
	if lost, err := metricValue(ctx, c, "http://"+debug+"/metrics", metric); err != nil || lost != 1 {
		t.Errorf("%s: %v, %v; want 1", metric, lost, err)
	}

	if err := ic.push(ctx, images[1]); err != nil {
		t.Fatal(err)
	}
	pullAndValidate(t, images, ic)
	if out, ok := runScrub(t, n.URL()); !ok || !strings.Contains(out, ", 0 bad\n") {
		t.Errorf("scrub after the push: exited 0: %v; want 0 bad:\n%s", ok, out)
	}
}
