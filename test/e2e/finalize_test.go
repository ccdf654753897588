package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/ring"
	"github.com/atollhq/atoll/test/minio"
)

// The final PUT of a chunked upload in a cluster: what a client that times
// out, or a holder that dies, leaves behind.

// randomBlob returns size pseudo-random bytes from seed.
func randomBlob(seed uint64, size int) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)}))
	b := make([]byte, size)
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// ringOwners returns the names of the first n owners of d on the ring of ms.
func ringOwners(ms []*clusterMember, d digest.Digest, n int) []string {
	return ring.New(ring.Config{}, memberNames(ms)).Owners(d, n)
}

// memberNotOwning returns a member of ms that is not among d's first n owners.
func memberNotOwning(t *testing.T, ms []*clusterMember, d digest.Digest, n int) *clusterMember {
	t.Helper()
	owners := ringOwners(ms, d, n)
	for _, m := range ms {
		if !slices.Contains(owners, m.name) {
			return m
		}
	}
	t.Fatalf("every member of %v owns %s", memberNames(ms), d)
	return nil
}

// uploadFiles returns the files under the member's DIR/uploads: bytes of
// uploads in progress, its own or other members' copies on their way.
func (m *clusterMember) uploadFiles() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(m.dataDir, "uploads"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out, nil
}

// startChunked opens a session on c and streams all of data in one PATCH,
// returning the session's location.
func startChunked(ctx context.Context, c *client, repo string, data []byte) (string, error) {
	loc, err := c.startUpload(ctx, repo)
	if err != nil {
		return "", err
	}
	return c.patchChunk(ctx, loc, data, 0)
}

// A 256 MiB chunked upload to a member that does not own the blob; the
// client gives up during the final PUT. Its retry answers 201 with the
// same digest, the blob ends on R members, and no member's disk keeps
// anything nobody references: no other blob, no upload bytes.
func TestFinalPutRetriedAfterClientTimeout(t *testing.T) {
	const size = 256 << 20
	c := startLoopbackCluster(t, 3, clusterOptions{replicas: 2})
	data := randomBlob(16, size)
	d := digest.FromBytes(data)
	m := memberNotOwning(t, c.members, d, 2)
	cl := newClient(m.URL())
	defer cl.close()
	ctx := context.Background()
	loc, err := startChunked(ctx, cl, "final/retry", data)
	if err != nil {
		t.Fatal(err)
	}

	// The client cuts the final PUT after 3 ms: soon, since the commit is
	// quick now that the holders received the bytes with the PATCH (the
	// api's TestFinalPutSurvivesClientTimeout cuts one mid-commit for sure).
	cutAndRetryFinalPut(t, cl, "final/retry", loc, d, 3*time.Millisecond, "a 256 MiB upload on a non-owner")
	other := digest.FromString("not the upload")
	if _, err := cl.do(ctx, "PUT", withDigest(loc, other), nil, nil, http.StatusBadRequest); err != nil {
		t.Errorf("PUT of the finished session with another digest: %v", err)
	}
	// The finished session is recorded on disk: after a SIGKILL and a
	// restart of the member holding it, a retry is answered the same.
	m.kill()
	m.Restart()
	m.killed = false
	pollUntil(t, 30*time.Second, m.name+" ready after its restart", func() error {
		_, err := cl.do(ctx, http.MethodGet, "/readyz", nil, nil, http.StatusOK)
		return err
	})
	if r, err := cl.do(ctx, "PUT", withDigest(loc, d), nil, nil, http.StatusCreated); err != nil {
		t.Errorf("PUT retried after %s restarted: %v", m.name, err)
	} else if got := r.header.Get("Docker-Content-Digest"); got != d.String() {
		t.Errorf("PUT retried after a restart: Docker-Content-Digest %q, want %s", got, d)
	}
	for _, o := range c.members {
		oc := newClient(o.URL())
		if _, err := oc.do(ctx, "HEAD", "/v2/final/retry/blobs/"+d.String(), nil, nil, http.StatusOK); err != nil {
			t.Errorf("through %s: %v", o.name, err)
		}
		oc.close()
	}
	waitPlaced(t, 30*time.Second, c.members, map[digest.Digest]bool{d: true}, 2)
	pollUntil(t, 10*time.Second, "no upload bytes left on any member", func() error {
		for _, o := range c.members {
			files, err := o.uploadFiles()
			if err != nil {
				return err
			}
			if len(files) > 0 {
				return fmt.Errorf("%s holds uploads %v", o.name, files)
			}
		}
		return nil
	})
}

// cutAndRetryFinalPut sends the final PUT of the upload session at loc
// and gives up on it after cut; the retry must answer 201 with the digest
// and the blob's Location. what names the upload in the logged measure.
func cutAndRetryFinalPut(t *testing.T, cl *client, repo, loc string, d digest.Digest, cut time.Duration, what string) {
	t.Helper()
	ctx := context.Background()
	cutCtx, cancel := context.WithTimeout(ctx, cut)
	start := time.Now()
	_, err := cl.do(cutCtx, "PUT", withDigest(loc, d), nil, nil, http.StatusCreated)
	cancel()
	switch {
	case err == nil:
		t.Logf("the final PUT answered 201 within %v (%v): nothing to cut", cut, time.Since(start).Round(time.Millisecond))
	case errors.Is(err, context.DeadlineExceeded):
		t.Logf("the final PUT cut by the client after %v", time.Since(start).Round(time.Millisecond))
	default:
		t.Fatalf("final PUT: %v", err)
	}
	start = time.Now()
	r, err := cl.do(ctx, "PUT", withDigest(loc, d), nil, nil, http.StatusCreated)
	if err != nil {
		t.Fatalf("retried PUT: %v", err)
	}
	logMeasure(t, "retried final PUT of %s answered 201 after %v", what, time.Since(start).Round(time.Millisecond))
	if got := r.header.Get("Docker-Content-Digest"); got != d.String() {
		t.Errorf("retried PUT: Docker-Content-Digest %q, want %s", got, d)
	}
	if got, want := r.header.Get("Location"), "/v2/"+repo+"/blobs/"+d.String(); got != want {
		t.Errorf("retried PUT: Location %q, want %q", got, want)
	}
}

// A holder of the blob is SIGKILLed while the upload's bytes are on their
// way to it. The client gets either an error it can retry (and the retried
// push succeeds) or a 201 with R durable copies among the live members;
// either way nothing acknowledged is lost.
func TestFinalPutHolderKilled(t *testing.T) {
	const size = 128 << 20
	c := startLoopbackCluster(t, 3, clusterOptions{replicas: 2})
	data := randomBlob(17, size)
	d := digest.FromBytes(data)
	m := memberNotOwning(t, c.members, d, 2)
	l := newAckLedger()
	cl := newClient(m.URL())
	cl.hc.Transport = l.wrap(cl.hc.Transport)
	cl.hc.Timeout = 2 * time.Minute
	defer cl.close()
	ctx := context.Background()

	// Kill the first other member that bytes of the blob reach, while the
	// client still sends them or waits for its upload to finish.
	type kill struct {
		m     *clusterMember
		after time.Duration
	}
	killed := make(chan kill, 1)
	start := time.Now()
	go func() {
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			for _, o := range c.members {
				if o == m {
					continue
				}
				files, _ := o.uploadFiles()
				if slices.ContainsFunc(files, func(f string) bool { return !strings.HasPrefix(f, ".") }) {
					o.Kill()
					killed <- kill{o, time.Since(start)}
					return
				}
			}
			time.Sleep(5 * time.Millisecond) // poll interval inside the deadline loop
		}
		killed <- kill{}
	}()
	loc, err := startChunked(ctx, cl, "final/kill", data)
	if err == nil {
		_, err = cl.do(ctx, "PUT", withDigest(loc, d), nil, nil, http.StatusCreated)
	}
	took := time.Since(start)
	k := <-killed
	victim := k.m
	if victim == nil {
		t.Fatal("no bytes of the upload reached another member")
	}
	t.Logf("upload through %s ended after %v (%v); %s killed after %v", m.name, took.Round(time.Millisecond), err, victim.name, k.after.Round(time.Millisecond))
	if k.after > took {
		t.Errorf("%s was killed after the upload ended: the test did not kill a holder in the middle", victim.name)
	}
	victim.killed = true
	live := c.live()
	if err != nil {
		var se *statusError
		if errors.As(err, &se) && se.status < 500 {
			t.Fatalf("upload refused with %d, not an error a client retries: %v", se.status, err)
		}
		// The client retries the whole push.
		loc, err := startChunked(ctx, cl, "final/kill", data)
		if err == nil {
			_, err = cl.do(ctx, "PUT", withDigest(loc, d), nil, nil, http.StatusCreated)
		}
		if err != nil {
			t.Fatalf("retried push after %s died: %v", victim.name, err)
		}
	} else {
		// The 201 meant R durable copies on members that are still alive.
		p, _, perr := placementOf(live)
		if perr != nil {
			t.Fatal(perr)
		}
		if len(p[d]) < 2 {
			t.Fatalf("201 with the blob on %v only; %s died", p[d], victim.name)
		}
	}
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	if err := cl.pushMonolithic(ctx, "final/kill", config); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.do(ctx, "PUT", "/v2/final/kill/manifests/v1", manifestHeader, stressManifest(config, [][]byte{data}), http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	l.verify(t, memberBases(live))
	waitPlaced(t, time.Minute, live, map[digest.Digest]bool{d: true, digest.FromBytes(config): true}, 2)
}

// A 128 MiB chunked upload to a member on S3, where the commit completes
// the multipart upload and copies it to the blob's key: the client cuts
// the final PUT at once and retries. The retry answers 201 with the same
// digest, the blob reads back whole, and the bucket keeps nothing of the
// upload.
func TestFinalPutRetriedS3(t *testing.T) {
	const size = 128 << 20
	m := minio.Start(t)
	n := startNodeWith(t, t.TempDir(), nodeOptions{env: s3Env(m, "final")})
	cl := newClient(n.URL())
	defer cl.close()
	ctx := context.Background()
	data := randomBlob(17, size)
	d := digest.FromBytes(data)
	loc, err := startChunked(ctx, cl, "final/s3", data)
	if err != nil {
		t.Fatal(err)
	}
	cutAndRetryFinalPut(t, cl, "final/s3", loc, d, 20*time.Millisecond, "a 128 MiB upload on S3")
	if err := cl.getBlob(ctx, "final/s3", d, size); err != nil {
		t.Error(err)
	}
	mc := minioCore(t, m)
	pollUntil(t, 10*time.Second, "the bucket keeps nothing of the upload", func() error {
		left, err := listMinioUploads(ctx, mc, "final", nil)
		if err != nil {
			return err
		}
		if left.objects+left.multipart > 0 {
			return errors.New(left.String())
		}
		return nil
	})
}
