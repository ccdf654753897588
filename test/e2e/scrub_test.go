package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	miniogo "github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage/diskspace/diskspacetest"
	"github.com/atollhq/atoll/test/minio"
)

// Scrubbing: `atoll scrub` reads back every blob on every member's disk.
// The disk's damage is made by hand: a byte flipped in one copy, another
// copy cut short, and both copies of one blob flipped.

// blobFile is where a member's filesystem store keeps blob d.
func blobFile(dataDir string, d digest.Digest) string {
	return filepath.Join(dataDir, "blobs", string(d.Algorithm()), d.Encoded()[:2], d.Encoded())
}

// flipByte flips one bit in the middle of file path, in place.
func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkFile fails unless file path holds the bytes of blob d.
func checkFile(t *testing.T, path string, d digest.Digest) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(b); got != d {
		t.Errorf("%s holds %d bytes of digest %s, want %s", path, len(b), got, d)
	}
}

var progressLine = regexp.MustCompile(`(?m)^ +\S+: (\d+) of (\d+) blobs`)

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitGoodCopy waits until member m holds the bytes of blob d again, and
// returns how long that took.
func waitGoodCopy(t *testing.T, m *clusterMember, d digest.Digest) time.Duration {
	t.Helper()
	return pollUntil(t, time.Minute, fmt.Sprintf("%s holds a good copy of %s again", m.name, d), func() error {
		b, err := os.ReadFile(blobFile(m.dataDir, d))
		if err != nil {
			return err
		}
		if got := digest.FromBytes(b); got != d {
			return fmt.Errorf("it holds %s", got)
		}
		return nil
	})
}

// runScrub runs atoll scrub against base and returns its output and
// whether it exited 0.
func runScrub(t *testing.T, base string, args ...string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, atollBin, append([]string{"scrub", "--addr", base}, args...)...).CombinedOutput()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		t.Fatalf("atoll scrub: %v\n%s", err, out)
	}
	// Progress never reads past its total, even when blobs arrive
	// meanwhile (a rebalance after a member is declared dead).
	for _, m := range progressLine.FindAllStringSubmatch(string(out), -1) {
		if mustAtoi(t, m[1]) > mustAtoi(t, m[2]) {
			t.Errorf("atoll scrub progress past its total: %q", m[0])
		}
	}
	return string(out), err == nil
}

// TestScrubCluster: a bad copy is moved aside and replaced from the member
// holding a good one, before the command returns; a blob whose every copy
// is bad is reported lost with the repository that links it, and a push of
// its image stores it again. Every image then pulls whole from every
// member, and a second scrub finds nothing.
func TestScrubCluster(t *testing.T) {
	c := startLoopbackCluster(t, 3, clusterOptions{})
	ic := newGGCRClient(c.members[0].Addr(), newAckLedger(), true)
	images := newClusterImages(t, "scrub/app", 3, 64<<10)
	pushAllImages(t, ic, images)
	p, _, _ := waitPlaced(t, 30*time.Second, c.members, imageBlobs(images), 2)
	member := map[string]*clusterMember{}
	for _, m := range c.members {
		member[m.name] = m
	}

	flipped, cut, lost := images[0].blobs[1], images[1].blobs[1], images[2].blobs[1]
	flipByte(t, blobFile(member[p[flipped][0]].dataDir, flipped))
	if err := os.Truncate(blobFile(member[p[cut][1]].dataDir, cut), 1000); err != nil {
		t.Fatal(err)
	}
	for _, h := range p[lost] {
		flipByte(t, blobFile(member[h].dataDir, lost))
	}

	start := time.Now()
	out, ok := runScrub(t, c.members[0].URL())
	logMeasure(t, "scrub of 3 members, %d blobs each: %v", len(p), time.Since(start).Round(time.Millisecond))
	t.Logf("atoll scrub:\n%s", out)
	if ok {
		t.Errorf("atoll scrub exited 0 with a blob lost")
	}
	if got := strings.Count(out, "replaced by a good copy from n"); got != 2 {
		t.Errorf("atoll scrub says %d copies were replaced, want 2", got)
	}
	if got := strings.Count(out, "LOST: moved to"); got != 2 || !strings.Contains(out, "linked by "+images[2].repo) {
		t.Errorf("atoll scrub reports %d lost copies, want both copies of %s, linked by %s", got, lost, images[2].repo)
	}
	for _, m := range c.members {
		if !strings.Contains(out, "  "+m.name+" ") {
			t.Errorf("no report of %s", m.name)
		}
	}
	checkFile(t, blobFile(member[p[flipped][0]].dataDir, flipped), flipped)
	checkFile(t, blobFile(member[p[cut][1]].dataDir, cut), cut)
	for _, h := range p[lost] {
		if _, err := os.Stat(blobFile(member[h].dataDir, lost)); !os.IsNotExist(err) {
			t.Errorf("%s still holds its bad copy of %s: %v", h, lost, err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pushAgain(ctx, t, ic, images[2])
	pullAndValidate(t, images, memberGGCRClients(c.members, newAckLedger())...)
	if out, ok := runScrub(t, c.members[1].URL()); !ok || strings.Count(out, ", 0 bad\n") != 3 {
		t.Errorf("second scrub: exited 0: %v; want 0 bad on each of 3 members:\n%s", ok, out)
	}

	// A member that stops answering mid-scrub (SIGSTOP) is given up after
	// six progress intervals without a word (1 s each with
	// ATOLL_CLUSTER_FAST), and the others' reports still arrive. A copy
	// from it stalls, and is given up after 3 s (30 s without FAST): the
	// bad copy on n1 whose only good one is on the frozen n3 is not
	// replaced yet, and not called lost.
	n1, n3 := c.members[0], c.members[2]
	p, _, _ = waitPlaced(t, 30*time.Second, c.members, imageBlobs(images), 2)
	var onN3 digest.Digest
	for d, holders := range p {
		if strings.Join(holders, ",") == n1.name+","+n3.name {
			onN3 = d
		}
	}
	if onN3 == "" {
		t.Fatalf("no blob on exactly %s and %s: %v", n1.name, n3.name, p)
	}
	flipByte(t, blobFile(n1.dataDir, onN3))
	n3.freeze()
	start = time.Now()
	out, ok = runScrub(t, n1.URL())
	took := time.Since(start)
	t.Logf("scrub with %s frozen, %v:\n%s", n3.name, took.Round(time.Millisecond), out)
	if ok || took > 30*time.Second || strings.Count(out, ", 0 bad\n") != 1 || !strings.Contains(out, n3.name+" sent nothing for 6s") {
		t.Errorf("scrub with a frozen member: exited 0: %v after %v; want it to fail within seconds, naming the frozen member, with the others' reports", ok, took)
	}
	if !strings.Contains(out, "NOT REPLACED YET") || !strings.Contains(out, n3.name+": sent nothing for 3s") || strings.Contains(out, "LOST") {
		t.Errorf("the bad copy whose good one is on the frozen member: want it not replaced yet, the stalled copy named, and not lost")
	}

	// Once the member answers again, n1 fetches the blob again by
	// itself (the thawed member sees no change of membership, so starts
	// no rebalance); every image pulls whole from every member.
	n3.thaw()
	back := waitGoodCopy(t, n1, onN3)
	logMeasure(t, "a copy not replaced by the scrub is back %v after the member holding the good one was thawed", back.Round(time.Millisecond))
	pullAndValidate(t, images, memberGGCRClients(c.members, newAckLedger())...)
}

// TestScrubFullDisk: a bad copy on a member whose disk is full is moved
// aside, and its good copy cannot be written: the scrub says why and does
// not call the blob lost; once space returns, the member fetches the copy
// within seconds, by itself.
func TestScrubFullDisk(t *testing.T) {
	mnt := diskspacetest.Tmpfs(t, 64<<20)
	c := startLoopbackCluster(t, 3, clusterOptions{dir: mnt})
	ic := newGGCRClient(c.members[0].Addr(), newAckLedger(), true)
	images := newClusterImages(t, "scrub/full", 2, 256<<10)
	pushAllImages(t, ic, images)
	p, _, _ := waitPlaced(t, 30*time.Second, c.members, imageBlobs(images), 2)
	// The member with the bad copy is one that holds the blob: placement
	// may give any one member none of an image's few blobs.
	bad := images[0].blobs[0]
	var holder *clusterMember
	for _, m := range c.members {
		if m.name == p[bad][0] {
			holder = m
		}
	}
	flipByte(t, blobFile(holder.dataDir, bad))
	filled := diskspacetest.Fill(t, mnt, "filler")

	out, ok := runScrub(t, holder.URL(), "--local")
	t.Logf("scrub of %s with its disk full (%d bytes of filler):\n%s", holder.name, filled, out)
	if ok || !strings.Contains(out, "NOT REPLACED YET") || strings.Contains(out, "LOST") {
		t.Errorf("scrub on a full disk: exited 0: %v; want the bad copy not replaced yet, and not lost", ok)
	}
	if !strings.Contains(out, "here: no space left") {
		t.Errorf("scrub on a full disk: the report does not say this member's disk is full")
	}
	if left, _ := filepath.Glob(filepath.Join(holder.dataDir, "uploads", "*")); len(left) > 0 {
		t.Errorf("the copies that did not fit left files behind: %v", left)
	}
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	back := waitGoodCopy(t, holder, bad)
	logMeasure(t, "a copy a full disk kept out is back %v after space returned", back.Round(time.Millisecond))
	pullAndValidate(t, images, memberGGCRClients(c.members, newAckLedger())...)
}

// TestScrubSingleNode: on a member on its own a bad copy has nowhere to
// come from: it is moved aside, so that the blob is unknown rather than
// served bad (a push would not replace it), the command fails naming the
// repository, and a push of the image repairs the registry.
func TestScrubSingleNode(t *testing.T) {
	debug := freeAddr(t)
	n := startNodeWith(t, filepath.Join(t.TempDir(), "data"), nodeOptions{args: []string{"--debug-addr", debug}})
	ic := newGGCRClient(n.Addr(), newAckLedger(), true)
	images := newClusterImages(t, "scrub/one", 2, 32<<10)
	pushAllImages(t, ic, images)
	bad := images[0].blobs[1]
	flipByte(t, blobFile(n.dataDir, bad))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ic.pull(ctx, images[0], images[0].tag); err == nil {
		t.Fatal("the image with a flipped byte pulled whole: the test damaged nothing")
	}
	c := newClient(n.URL())
	defer c.close()
	upload := "/v2/" + images[0].repo + "/blobs/uploads/?digest=" + bad.String()
	if _, err := c.do(ctx, http.MethodPost, upload, nil, layerBytes(t, images[0], bad), http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	if err := ic.pull(ctx, images[0], images[0].tag); err == nil {
		t.Fatal("an upload of the good bytes replaced the bad copy: this test no longer shows what scrubbing is for")
	}

	out, ok := runScrub(t, n.URL(), "--rate", "64MiB")
	t.Logf("atoll scrub:\n%s", out)
	blobs := len(imageBlobs(images))
	if ok || !strings.Contains(out, fmt.Sprintf("checked %d blobs", blobs)) || !strings.Contains(out, "1 bad") ||
		!strings.Contains(out, bad.String()) || !strings.Contains(out, "linked by "+images[0].repo) ||
		!strings.Contains(out, fmt.Sprintf("%d of %d blobs", blobs, blobs)) {
		t.Errorf("atoll scrub exited 0: %v; want it to fail, naming %s, its repository %s, and its progress", ok, bad, images[0].repo)
	}
	metrics := "http://" + debug + "/metrics"
	if lost, err := metricValue(ctx, c, metrics, `atoll_scrub_bad_blobs_total{outcome="lost"}`); err != nil || lost != 1 {
		t.Errorf("lost blobs in the metrics: %v, %v; want 1", lost, err)
	}
	if at, err := metricValue(ctx, c, metrics, "atoll_scrub_last_finished_timestamp_seconds"); err != nil || time.Since(time.Unix(int64(at), 0)) > time.Minute {
		t.Errorf("the last scrub's time in the metrics: %v, %v; want a moment ago", at, err)
	}
	if _, err := c.do(ctx, http.MethodHead, "/v2/"+images[0].repo+"/blobs/"+bad.String(), nil, nil, http.StatusNotFound); err != nil {
		t.Errorf("the bad blob after the scrub: %v", err)
	}
	moved, _ := filepath.Glob(filepath.Join(n.dataDir, "quarantine", "sha256-"+bad.Encoded()+"-*"))
	if len(moved) != 1 {
		t.Fatalf("quarantine holds %v, want the bad copy", moved)
	}
	if b, err := os.ReadFile(moved[0]); err != nil || digest.FromBytes(b) == bad || bytes.Equal(b, nil) {
		t.Errorf("the quarantined file: %d bytes, %v; want the bad copy", len(b), err)
	}

	pushAgain(ctx, t, ic, images[0])
	pullAndValidate(t, images, ic)
	if out, ok := runScrub(t, n.URL()); !ok || !strings.Contains(out, ", 0 bad\n") {
		t.Errorf("scrub after the push: exited 0: %v; want 0 bad:\n%s", ok, out)
	}
}

// pushAgain pushes ti as docker push does: each layer the registry lacks,
// then the manifest. (go-containerregistry's remote.Write skips an image
// whose manifest the registry has, lost layer or not.)
func pushAgain(ctx context.Context, t *testing.T, ic *ggcrClient, ti clusterImage) {
	t.Helper()
	layers, err := ti.img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		if err := remote.WriteLayer(ic.ref(ti.repo, ti.tag).Context(), l, ic.with(ctx)...); err != nil {
			t.Fatalf("push a layer of %s again: %v", ti.repo, err)
		}
	}
	if err := ic.push(ctx, ti); err != nil {
		t.Fatal(err)
	}
}

// layerBytes returns the bytes of ti's layer d.
func layerBytes(t *testing.T, ti clusterImage, d digest.Digest) []byte {
	t.Helper()
	h, err := v1.NewHash(d.String())
	if err != nil {
		t.Fatal(err)
	}
	l, err := ti.img.LayerByDigest(h)
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestScrubScheduled: with scrub.interval (here --scrub-interval) a member
// scrubs on its own: a bad copy is moved aside without anyone asking, and
// the time of the last scrub is kept for the next start.
func TestScrubScheduled(t *testing.T) {
	n := startNodeWith(t, filepath.Join(t.TempDir(), "data"), nodeOptions{args: []string{"--scrub-interval", "1s"}})
	ic := newGGCRClient(n.Addr(), newAckLedger(), true)
	images := newClusterImages(t, "scrub/scheduled", 1, 16<<10)
	pushAllImages(t, ic, images)
	bad := images[0].blobs[1]
	flipByte(t, blobFile(n.dataDir, bad))
	took := pollUntil(t, 20*time.Second, "the bad copy moved aside by a scheduled scrub", func() error {
		moved, _ := filepath.Glob(filepath.Join(n.dataDir, "quarantine", "sha256-"+bad.Encoded()+"-*"))
		if len(moved) != 1 {
			return fmt.Errorf("quarantine holds %v", moved)
		}
		return nil
	})
	t.Logf("a scheduled scrub moved the bad copy aside %v after it was damaged", took.Round(time.Millisecond))
	if _, err := os.Stat(filepath.Join(n.dataDir, "scrub.json")); err != nil {
		t.Errorf("the schedule's file: %v", err)
	}
	if !strings.Contains(n.log.String(), "scrub: bad copy of a blob") {
		t.Errorf("the member's log does not report the bad copy")
	}
}

// TestScrubS3: on a bucket the scrub reads every object once, through the
// S3 API. An object whose bytes no longer match its digest (overwritten
// here behind the registry's back) is reported lost with its repository;
// it is not moved, as S3 has no way to move it only if it is still the
// copy that was read. The member's disk cache of the bucket is read too: a
// cached copy gone bad (which every pull of a hot layer would meet, as it
// is never evicted) is dropped, and the next pull reads the bucket again.
func TestScrubS3(t *testing.T) {
	m := minio.Start(t)
	mc := minioCore(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := startNodeWith(t, t.TempDir(), nodeOptions{env: s3Env(m, "scrub")})
	ic := newGGCRClient(n.Addr(), newAckLedger(), true)
	images := newClusterImages(t, "scrub/s3", 2, 32<<10)
	pushAllImages(t, ic, images)
	bad := images[1].blobs[1]
	key := "blobs/sha256/" + bad.Encoded()[:2] + "/" + bad.Encoded()
	junk := []byte("bytes an operator's tool wrote over the layer")
	if _, err := mc.PutObject(ctx, "scrub", key, bytes.NewReader(junk), int64(len(junk)), "", "", miniogo.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	cachedBad := images[0].blobs[1]
	cached := blobFile(filepath.Join(n.dataDir, "cache"), cachedBad)
	pollUntil(t, 20*time.Second, "the layer cached on the member's disk", func() error {
		if err := ic.pull(ctx, images[0], images[0].tag); err != nil {
			return err
		}
		_, err := os.Stat(cached)
		return err
	})
	flipByte(t, cached)
	if err := ic.pull(ctx, images[0], images[0].tag); err == nil {
		t.Fatal("the image whose cached layer has a flipped byte pulled whole: the test damaged nothing")
	}

	out, ok := runScrub(t, n.URL())
	t.Logf("atoll scrub:\n%s", out)
	if !strings.Contains(out, "(disk cache)") || !strings.Contains(out, cachedBad.String()) ||
		!strings.Contains(out, "replaced by a good copy from the bucket, on the next read") {
		t.Errorf("atoll scrub does not report the bad cached copy %s dropped", cachedBad)
	}
	blobs := len(imageBlobs(images))
	if ok || !strings.Contains(out, fmt.Sprintf("checked %d blobs", blobs)) || !strings.Contains(out, bad.String()) ||
		!strings.Contains(out, "cannot move a copy aside") || !strings.Contains(out, "linked by "+images[1].repo) {
		t.Errorf("atoll scrub exited 0: %v; want it to fail, naming %s, its repository %s, and that it stays", ok, bad, images[1].repo)
	}
	if _, err := mc.StatObject(ctx, "scrub", key, miniogo.StatObjectOptions{}); err != nil {
		t.Errorf("the bad object after the scrub: %v; want it left in place", err)
	}
	pullAndValidate(t, images[:1], ic)
}
