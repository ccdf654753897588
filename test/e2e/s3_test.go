package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/test/minio"
)

// s3Env configures a member to keep its blobs in bucket on the MinIO
// server, through registry:2's variables.
func s3Env(m *minio.Server, bucket string) []string {
	return []string{
		"REGISTRY_STORAGE=s3",
		"REGISTRY_STORAGE_S3_REGIONENDPOINT=http://" + m.Endpoint(),
		"REGISTRY_STORAGE_S3_BUCKET=" + bucket,
		"REGISTRY_STORAGE_S3_REGION=us-east-1",
		"REGISTRY_STORAGE_S3_ACCESSKEY=" + m.AccessKey,
		"REGISTRY_STORAGE_S3_SECRETKEY=" + m.SecretKey,
		"REGISTRY_STORAGE_S3_SECURE=false",
	}
}

// TestConformanceS3 runs the OCI conformance suite against a member whose
// blobs live in MinIO.
func TestConformanceS3(t *testing.T) {
	bin := conformanceBinary(t)
	m := minio.Start(t)
	n := startNodeWith(t, t.TempDir(), nodeOptions{env: s3Env(m, "conformance")})
	runConformance(t, bin, n.Addr(), "s3")
}

// TestS3Outage stops MinIO under a running member: requests that need the
// bucket get a clear 503 quickly, never a 500 or a hang; once MinIO is back
// everything works and what was stored before is intact.
func TestS3Outage(t *testing.T) {
	m := minio.Start(t)
	n := startNodeWith(t, t.TempDir(), nodeOptions{env: s3Env(m, "outage")})
	c := newClient(n.URL())
	defer c.close()
	ctx := context.Background()
	before := bytes.Repeat([]byte("stored before the outage "), 4096)
	if err := c.pushMonolithic(ctx, "s3/outage", before); err != nil {
		t.Fatal(err)
	}

	m.Stop()
	during := []byte("pushed during the outage")
	start := time.Now()
	resp, err := c.do(ctx, "POST", "/v2/s3/outage/blobs/uploads/?digest="+digest.FromBytes(during).String(), nil, during)
	if err == nil {
		t.Fatalf("push during the outage answered %d", resp.status)
	}
	se, ok := err.(*statusError)
	if !ok || se.status != http.StatusServiceUnavailable || !strings.Contains(se.body, "UNAVAILABLE") {
		t.Fatalf("push during the outage: %v, want 503 UNAVAILABLE", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("the 503 took %v", took)
	}
	head, err := http.Head(n.URL() + "/readyz")
	if err != nil || head.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz during the outage: %v %v", head, err)
	}

	m.Restart()
	pollUntil(t, 30*time.Second, "push after MinIO is back", func() error {
		return c.pushMonolithic(ctx, "s3/outage", during)
	})
	for _, b := range [][]byte{before, during} {
		got, err := c.do(ctx, "GET", "/v2/s3/outage/blobs/"+digest.FromBytes(b).String(), nil, nil, http.StatusOK)
		if err != nil || !bytes.Equal(got.body, b) {
			t.Errorf("blob after the outage: %v", err)
		}
	}
}

// TestClusterSharedBucket: three members on one bucket keep one copy of
// each blob; the ring picks the member that caches and serves it.
func TestClusterSharedBucket(t *testing.T) {
	m := minio.Start(t)
	c := startLoopbackCluster(t, 3, clusterOptions{replicas: 2, env: s3Env(m, "shared")})
	l := newAckLedger()
	images := newClusterImages(t, "shared", 3, 64<<10)
	ics := memberGGCRClients(c.members, l)
	pushAllImages(t, ics[0], images)
	pullAndValidate(t, images, ics...)
	want := contentsOfImages(images)
	pollUntil(t, 15*time.Second, "identical catalogs", func() error { return sameContents(c.members, want) })

	// No member keeps blobs of its own; each blob is cached on one member
	// (the cache fills in the background after the first read).
	pollUntil(t, 15*time.Second, "each blob cached on exactly one member", func() error {
		cached := map[digest.Digest]int{}
		for _, mem := range c.members {
			if files, _ := filepath.Glob(filepath.Join(mem.dataDir, "blobs", "sha256", "*", "*")); len(files) > 0 {
				return fmt.Errorf("%s holds blob files outside its cache: %v", mem.name, files)
			}
			files, _ := filepath.Glob(filepath.Join(mem.dataDir, "cache", "blobs", "sha256", "*", "*"))
			for _, f := range files {
				cached[digest.NewDigestFromEncoded(digest.SHA256, filepath.Base(f))]++
			}
		}
		for d := range imageBlobs(images) {
			if cached[d] != 1 {
				return fmt.Errorf("blob %s cached on %d members, want 1 (its owner)", d, cached[d])
			}
		}
		return nil
	})
	// Each member reports the blobs in its cache.
	files := map[string]int64{}
	for _, mem := range c.members {
		f, _ := filepath.Glob(filepath.Join(mem.dataDir, "cache", "blobs", "sha256", "*", "*"))
		files[mem.name] = int64(len(f))
	}
	pollUntil(t, 10*time.Second, "cached blob counts in the cluster status", func() error {
		r, err := c.members[0].status()
		if err != nil {
			return err
		}
		for _, x := range r.Members {
			if x.Blobs != files[x.Name] {
				return fmt.Errorf("%s reports %d blobs, has %d cached", x.Name, x.Blobs, files[x.Name])
			}
		}
		return nil
	})
	l.verify(t, memberBases(c.members))
}
