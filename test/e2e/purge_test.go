package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/ring"
	"github.com/atollhq/atoll/test/minio"
)

// Abandoned uploads: bytes a crash leaves behind (upload files, copies
// from other members, S3 multipart parts) go once they are older than the
// purge age, in every storage mode. The purge age is set short through
// registry:2's storage.maintenance.uploadpurging keys.

const purgeAge = 4 * time.Second

var purgeEnv = []string{
	"REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE=" + purgeAge.String(),
	"REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_INTERVAL=1s",
}

// stalledUpload sends size random bytes as the body of a request to url,
// then stops sending without ending the body, like a client that hangs or
// whose registry dies mid-upload. stop ends the request.
func stalledUpload(t *testing.T, method, url string, size int) (stop func()) {
	t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequest(method, url, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	go func() {
		buf := make([]byte, 1<<20)
		for sent := 0; sent < size; sent += len(buf) {
			_, _ = rand.Read(buf)
			if _, err := pw.Write(buf); err != nil {
				return
			}
		}
	}()
	return func() {
		pw.CloseWithError(errors.New("client gone"))
		<-done
	}
}

// uploadFiles returns the files under dir/uploads and their sizes.
func uploadFiles(dir string) (map[string]int64, error) {
	out := map[string]int64{}
	entries, err := os.ReadDir(filepath.Join(dir, "uploads"))
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			out[e.Name()] = fi.Size()
		}
	}
	return out, nil
}

func totalSize(files map[string]int64) int64 {
	var n int64
	for _, s := range files {
		n += s
	}
	return n
}

// waitNoUploadFiles waits until dir/uploads is empty and returns how long
// that took.
func waitNoUploadFiles(t *testing.T, who, dir string) time.Duration {
	t.Helper()
	return pollUntil(t, 30*time.Second, who+": no upload bytes left", func() error {
		files, err := uploadFiles(dir)
		if err != nil {
			return err
		}
		if len(files) > 0 {
			return fmt.Errorf("%d files, %d bytes left: %v", len(files), totalSize(files), files)
		}
		return nil
	})
}

// TestClusterOrphanPurge: in a cluster on local disks, a member killed in
// the middle of a monolithic upload and of a chunked one, and a member
// killed while another member copies a blob to it, are left with upload
// bytes; after a restart both purge them within the purge age and a few
// janitor rounds.
func TestClusterOrphanPurge(t *testing.T) {
	c := startLoopbackCluster(t, 3, clusterOptions{replicas: 2, env: purgeEnv})
	ctx := context.Background()
	const size = 48 << 20

	// Uploads cut by a SIGKILL: one without a session, one with.
	up := c.members[1]
	cl := newClient(up.URL())
	defer cl.close()
	loc, err := cl.startUpload(ctx, "purge/cluster")
	if err != nil {
		t.Fatal(err)
	}
	stopMono := stalledUpload(t, "POST", up.URL()+"/v2/purge/cluster/blobs/uploads/?digest="+digest.FromString("never sent").String(), size)
	stopPatch := stalledUpload(t, "PATCH", up.URL()+loc, size)
	// Not every byte sent reaches the disk before the stall: some wait in
	// socket buffers (which grow under load), and each upload's last
	// partial chunk stays in memory until it fills (uploads are written
	// in whole chunks with O_DIRECT). Half of each is plenty to purge;
	// the last 8 MiB did not always reach the disk under CI's load, and
	// the stalled files were purged before the poll saw them.
	pollUntil(t, 30*time.Second, "both uploads' bytes on "+up.name+"'s disk", func() error {
		files, err := uploadFiles(up.dataDir)
		if err != nil {
			return err
		}
		if len(files) < 2 || totalSize(files) < size {
			return fmt.Errorf("%d files, %d bytes", len(files), totalSize(files))
		}
		return nil
	})
	up.kill()
	stopMono()
	stopPatch()
	files, _ := uploadFiles(up.dataDir)
	t.Logf("%s killed holding %d upload files, %.1f MiB", up.name, len(files), float64(totalSize(files))/(1<<20))
	up.Restart()
	up.killed = false
	took := waitNoUploadFiles(t, up.name, up.dataDir)
	t.Logf("%s: orphan upload bytes gone %v after the restart (purge age %v)", up.name, took.Round(100*time.Millisecond), purgeAge)
	if n, err := cl.uploadStatus(ctx, loc); err != nil || n != -1 {
		t.Errorf("the abandoned session answers %d, %v; want 404 BLOB_UPLOAD_UNKNOWN", n, err)
	}

	// A copy to another member cut by a SIGKILL of the receiver.
	receiver, how := killDuringPeerCopy(t, c)
	t.Logf("%s killed while receiving a copy: %s", receiver.name, how)
	files, _ = uploadFiles(receiver.dataDir)
	t.Logf("%s killed holding %d upload files, %.1f MiB", receiver.name, len(files), float64(totalSize(files))/(1<<20))
	if len(files) == 0 {
		t.Fatalf("%s holds no partial copy after the kill", receiver.name)
	}
	receiver.Restart()
	receiver.killed = false
	took = waitNoUploadFiles(t, receiver.name, receiver.dataDir)
	t.Logf("%s: orphan peer copy gone %v after the restart", receiver.name, took.Round(100*time.Millisecond))
}

// killDuringPeerCopy pushes 64 MiB blobs through the first member, each
// owned by the two others, until it catches one of them with a copy in its
// uploads directory (a replica streamed while the client sends, or a copy
// placed after the commit) and kills it. It returns that member and how far into
// the copy it was caught.
func killDuringPeerCopy(t *testing.T, c *testCluster) (*clusterMember, string) {
	t.Helper()
	via, others := c.members[0], c.members[1:]
	r := ring.New(ring.Config{}, memberNames(c.members))
	data := make([]byte, 64<<20)
	for attempt := range 8 {
		var d digest.Digest
		for {
			_, _ = rand.Read(data[:64])
			d = digest.FromBytes(data)
			if owners := r.Owners(d, 2); !strings.Contains(strings.Join(owners, ","), via.name) {
				break
			}
		}
		pushed := make(chan error, 1)
		go func() {
			cl := newClient(via.URL())
			defer cl.close()
			pushed <- cl.pushMonolithic(context.Background(), "purge/peer", data)
		}()
		var caught *clusterMember
		var at int64
	watch:
		for {
			select {
			case <-pushed:
				break watch
			default:
			}
			for _, m := range others {
				files, _ := uploadFiles(m.dataDir)
				for name, size := range files {
					if (strings.HasPrefix(name, "replica-") || strings.HasPrefix(name, "peer-")) && size > 8<<20 {
						m.kill()
						caught, at = m, size
						break watch
					}
				}
			}
			time.Sleep(time.Millisecond) // poll interval; the copy takes far longer
		}
		if caught != nil {
			<-pushed // 201 from the other owners, or an error: either way it ended
			return caught, fmt.Sprintf("attempt %d, %.1f of 64 MiB received", attempt+1, float64(at)/(1<<20))
		}
	}
	t.Fatal("no copy to another member was caught in flight in 8 pushes of 64 MiB")
	return nil, ""
}

// minioUploads is what a bucket holds of unfinished uploads: the ids under
// uploads/, and the multipart uploads of each with their parts' bytes.
type minioUploads struct {
	objects   int
	ids       map[string]bool
	multipart int
	bytes     int64
}

func (u minioUploads) String() string {
	return fmt.Sprintf("%d upload ids, %d objects, %d multipart uploads holding %.1f MiB",
		len(u.ids), u.objects, u.multipart, float64(u.bytes)/(1<<20))
}

// listMinioUploads lists the unfinished uploads in bucket, looking up the
// multipart uploads of ids too (MinIO lists them only by exact key), so
// uploads whose other objects are gone are still seen.
func listMinioUploads(ctx context.Context, mc *miniogo.Core, bucket string, ids map[string]bool) (minioUploads, error) {
	out := minioUploads{ids: map[string]bool{}}
	for obj := range mc.Client.ListObjects(ctx, bucket, miniogo.ListObjectsOptions{Prefix: "uploads/", Recursive: true}) {
		if obj.Err != nil {
			return out, obj.Err
		}
		out.objects++
		id, _, _ := strings.Cut(strings.TrimPrefix(obj.Key, "uploads/"), "/")
		out.ids[id] = true
	}
	all := map[string]bool{}
	for id := range ids {
		all[id] = true
	}
	for id := range out.ids {
		all[id] = true
	}
	for id := range all {
		key := "uploads/" + id + "/data"
		for u := range mc.Client.ListIncompleteUploads(ctx, bucket, key, false) {
			if u.Err != nil {
				return out, u.Err
			}
			if u.Key != key {
				continue
			}
			out.multipart++
			out.ids[id] = true
			parts, err := mc.ListObjectParts(ctx, bucket, key, u.UploadID, 0, 10000)
			if err != nil {
				return out, err
			}
			for _, p := range parts.ObjectParts {
				out.bytes += p.Size
			}
		}
	}
	return out, nil
}

func minioCore(t *testing.T, m *minio.Server) *miniogo.Core {
	t.Helper()
	mc, err := miniogo.NewCore(m.Endpoint(), &miniogo.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

// stallTwoUploads starts, on the member at base, a monolithic upload and a
// chunked one that stop sending after size bytes, and waits until the
// bucket holds at least two parts of each.
func stallTwoUploads(t *testing.T, base string, mc *miniogo.Core, bucket string, size int) (stop func(), loc string, held minioUploads) {
	t.Helper()
	cl := newClient(base)
	defer cl.close()
	loc, err := cl.startUpload(context.Background(), "purge/s3")
	if err != nil {
		t.Fatal(err)
	}
	stopMono := stalledUpload(t, "POST", base+"/v2/purge/s3/blobs/uploads/?digest="+digest.FromString("never sent").String(), size)
	stopPatch := stalledUpload(t, "PATCH", base+loc, size)
	pollUntil(t, 60*time.Second, "both uploads' parts in MinIO", func() error {
		var err error
		held, err = listMinioUploads(context.Background(), mc, bucket, nil)
		if err != nil {
			return err
		}
		if held.multipart < 2 || held.bytes < 4*(16<<20) {
			return errors.New(held.String())
		}
		return nil
	})
	return func() { stopMono(); stopPatch() }, loc, held
}

// waitMinioClean waits until the bucket holds nothing of an unfinished
// upload, those of ids included, and returns how long that took.
func waitMinioClean(t *testing.T, mc *miniogo.Core, bucket string, ids map[string]bool) time.Duration {
	t.Helper()
	return pollUntil(t, 30*time.Second, "no upload left in MinIO", func() error {
		u, err := listMinioUploads(context.Background(), mc, bucket, ids)
		if err != nil {
			return err
		}
		if u.objects > 0 || u.multipart > 0 {
			return errors.New(u.String())
		}
		return nil
	})
}

// TestS3OrphanPurge: a member on S3 killed in the middle of a monolithic
// upload and of a chunked one leaves multipart parts in the bucket; after
// a restart it aborts them once they are older than the purge age.
func TestS3OrphanPurge(t *testing.T) {
	m := minio.Start(t)
	mc := minioCore(t, m)
	n := startNodeWith(t, t.TempDir(), nodeOptions{env: append(s3Env(m, "purge"), purgeEnv...)})
	stop, loc, held := stallTwoUploads(t, n.URL(), mc, "purge", 48<<20)
	n.Kill()
	stop()
	t.Logf("killed with MinIO holding %s", held)
	n.Restart()
	took := waitMinioClean(t, mc, "purge", held.ids)
	after, _ := listMinioUploads(context.Background(), mc, "purge", held.ids)
	t.Logf("MinIO holds %s %v after the restart (purge age %v)", after, took.Round(100*time.Millisecond), purgeAge)
	cl := newClient(n.URL())
	defer cl.close()
	if size, err := cl.uploadStatus(context.Background(), loc); err != nil || size != -1 {
		t.Errorf("the abandoned session answers %d, %v; want 404 BLOB_UPLOAD_UNKNOWN", size, err)
	}
}

// TestSharedBucketOrphanPurge: in a cluster on one bucket, the uploads a
// member leaves when it is killed for good are purged by the members that
// remain.
func TestSharedBucketOrphanPurge(t *testing.T) {
	m := minio.Start(t)
	mc := minioCore(t, m)
	c := startLoopbackCluster(t, 2, clusterOptions{replicas: 1, env: append(s3Env(m, "shared-purge"), purgeEnv...)})
	gone := c.members[1]
	stop, _, held := stallTwoUploads(t, gone.URL(), mc, "shared-purge", 48<<20)
	gone.kill()
	stop()
	t.Logf("%s killed for good with MinIO holding %s", gone.name, held)
	took := waitMinioClean(t, mc, "shared-purge", held.ids)
	t.Logf("the other member purged them %v after the kill (purge age %v)", took.Round(100*time.Millisecond), purgeAge)
}
