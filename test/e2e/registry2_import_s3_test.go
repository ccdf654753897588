package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"

	"github.com/atollhq/atoll/test/minio"
)

// r2S3 is Distribution's S3 driver on the bucket of m, under root.
func r2S3(m *minio.Server, bucket, root string) string {
	return fmt.Sprintf(`  s3:
    accesskey: %s
    secretkey: %s
    region: us-east-1
    regionendpoint: http://%s
    bucket: %s
    rootdirectory: %s
    secure: false
    v4auth: true`, m.AccessKey, m.SecretKey, m.Endpoint(), bucket, root)
}

// TestRegistry2AdoptS3 is TestRegistry2Adopt on MinIO: Distribution keeps
// the images in a bucket under a root directory; atoll, configured with the
// same bucket and rootdirectory, imports them by server-side copies (no
// blob passes through it), is killed with SIGKILL in the middle and
// finishes at the next start; then every image Distribution served pulls
// with the same digests, the deleted manifest stays deleted, and a member
// with a new data directory on the same bucket does not import again.
func TestRegistry2AdoptS3(t *testing.T) {
	bin := distributionBinary(t)
	start := time.Now()
	m := minio.Start(t)
	const bucket, root = "registry", "/r2root"
	mc := minioCore(t, m)
	ctx := context.Background()
	if err := mc.MakeBucket(ctx, bucket, miniogo.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatal(err)
	}
	addr, stop := r2StartDistribution(t, bin, r2S3(m, bucket, root))
	content := r2Push(t, addr, 120) // fewer than on disk: Distribution's S3 driver is slow to push to
	pushed := time.Since(start)
	r2CheckServes(t, addr, content)
	stop()

	count := func(prefix, suffix string) int {
		n := 0
		for obj := range mc.Client.ListObjects(ctx, bucket, miniogo.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if obj.Err != nil {
				t.Fatalf("list %s: %v", prefix, obj.Err)
			}
			if strings.HasSuffix(obj.Key, suffix) {
				n++
			}
		}
		return n
	}
	total := count("r2root/docker/registry/v2/blobs/", "/data")
	held := func() int { return count("r2root/blobs/", "") }
	env := append(s3Env(m, bucket), "REGISTRY_STORAGE_S3_ROOTDIRECTORY="+root)

	var n *Node
	for attempt := 1; ; attempt++ {
		n = r2StartImporting(t, t.TempDir(), env...)
		if r2KillMidImport(t, n, total, held) {
			break
		}
		if attempt == 3 {
			t.Fatal("the import finished before it could be killed three times")
		}
		n.Stop()
		for _, prefix := range []string{"r2root/blobs/", "r2root/records/"} {
			for obj := range mc.Client.ListObjects(ctx, bucket, miniogo.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
				_ = mc.RemoveObject(ctx, bucket, obj.Key, miniogo.RemoveObjectOptions{})
			}
		}
	}
	if count("r2root/records/", "") != 0 {
		t.Fatal("import recorded as done though it was killed")
	}
	resumed := time.Now()
	n.start() // same data directory and bucket: the import resumes
	imported := time.Since(resumed)
	report := r2ImportReport(t, n.log.String())
	if report["copied"] != 0 || report["serverCopied"]+report["alreadyHeld"] != total || report["corrupt"] != 0 {
		t.Errorf("resumed import: %v; want the %d blobs held or copied server-side, none through atoll", report, total)
	}
	if got := held(); got != total {
		t.Errorf("atoll holds %d blobs in the bucket, registry:2 held %d", got, total)
	}
	r2CheckServes(t, n.Addr(), content)

	// The record is in the bucket: a restart, and a member with a new data
	// directory, do not import again.
	n.Restart()
	fresh := r2StartImporting(t, t.TempDir(), env...)
	pollUntil(t, 30*time.Second, "the member with a new data directory serves", func() error {
		if !strings.Contains(fresh.log.String(), "serving registry") {
			return fmt.Errorf("not serving yet")
		}
		return nil
	})
	if c := strings.Count(n.log.String(), "registry:2 import done"); c != 1 {
		t.Errorf("%d import reports after a restart, want 1 (recorded as done)", c)
	}
	if strings.Contains(fresh.log.String(), "registry:2 data found") {
		t.Error("a member with a new data directory on the same bucket imported again")
	}
	reportSummary(fmt.Sprintf("registry:2 adoption on MinIO: %d refs, %d blobs (%d KiB of layers) copied server-side; push to Distribution %s, resumed import until healthy %s, in all %s",
		len(content.refs), total, content.blobs>>10, pushed.Round(100*time.Millisecond), imported.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond)))
}

// r2ImportReport reads the numbers of the last "registry:2 import done"
// line of a member's log.
func r2ImportReport(t *testing.T, log string) map[string]int {
	t.Helper()
	i := strings.LastIndex(log, "registry:2 import done")
	if i < 0 {
		t.Fatalf("no import report in the log")
	}
	line, _, _ := strings.Cut(log[i:], "\n")
	out := map[string]int{}
	for _, m := range regexp.MustCompile(` (\w+)=(\d+)\b`).FindAllStringSubmatch(line, -1) {
		out[m[1]], _ = strconv.Atoi(m[2])
	}
	return out
}
