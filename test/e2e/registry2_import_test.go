package e2e

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// r2DistributionConfig is CNCF Distribution on a given storage (a
// storage driver's YAML, indented under storage:) with deletes enabled, as
// a registry:2 user runs it.
const r2DistributionConfig = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
%s
  delete:
    enabled: true
http:
  addr: %q
`

// r2Filesystem is Distribution's storage driver on dir.
func r2Filesystem(dir string) string {
	return fmt.Sprintf("  filesystem:\n    rootdirectory: %q", dir)
}

// r2Content is what the test pushed to Distribution: every reference it
// served with its digest, and the manifests it deleted.
type r2Content struct {
	refs    map[string]v1.Hash // repo:tag or repo@digest -> manifest digest
	deleted []string           // repo@digest, deleted through the API
	blobs   int64              // bytes of layer content pushed
}

// TestRegistry2Adopt pushes images with real clients to CNCF Distribution
// (a multi-arch index, a tag moved, a manifest deleted, an image of many
// small layers), stops it, and starts atoll on the same directory: atoll
// imports it in place, is killed with SIGKILL in the middle of the import,
// starts again, and then serves every image Distribution served with the
// same digests, keeps the deleted manifest deleted, and the directory's
// disk usage grows by atoll's metadata only (blobs are hard links).
func TestRegistry2Adopt(t *testing.T) {
	bin := distributionBinary(t)
	start := time.Now()
	dir := filepath.Join(t.TempDir(), "registry")
	addr, stop := r2StartDistribution(t, bin, r2Filesystem(dir))
	content := r2Push(t, addr, 400)
	r2CheckServes(t, addr, content) // the baseline: what Distribution serves
	stop()
	before := duKiB(t, dir)
	r2CheckDryRun(t, dir)

	// atoll on the same directory, killed while it imports.
	var n *Node
	total := r2Count(filepath.Join(dir, "docker/registry/v2/blobs"), "data")
	held := func() int { return r2Count(filepath.Join(dir, "blobs"), "") }
	for attempt := 1; ; attempt++ {
		n = r2StartImporting(t, dir)
		if r2KillMidImport(t, n, total, held) {
			break
		}
		if attempt == 3 {
			t.Fatal("the import finished before it could be killed three times")
		}
		n.Stop()
		r2ForgetImport(t, dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "registry2-import.json")); err == nil {
		t.Fatal("import recorded as done though it was killed")
	}
	n.start() // same address and directory: the import resumes
	if !strings.Contains(n.log.String(), "registry:2 import done") {
		t.Fatalf("no import report in the log after the restart")
	}
	r2CheckServes(t, n.Addr(), content)
	for _, ref := range content.deleted {
		if code := headManifest(t, n.Addr(), ref); code != http.StatusNotFound {
			t.Errorf("deleted manifest %s: HEAD %d on atoll, want 404", ref, code)
		}
	}
	after := duKiB(t, dir)
	// atoll's metadata database keeps 8 MiB preallocated; blobs add nothing.
	if grew := after - before; grew > 12<<10 || grew*1024 > content.blobs/2 {
		t.Errorf("disk usage grew from %d KiB to %d KiB importing %d KiB of layers: blobs copied, not linked", before, after, content.blobs>>10)
	}
	r2CheckLinked(t, dir)

	// A restart does not import again.
	n.Restart()
	if c := strings.Count(n.log.String(), "registry:2 import done"); c != 1 {
		t.Errorf("%d import reports after a second restart, want 1 (recorded as done)", c)
	}
	reportSummary(fmt.Sprintf("registry:2 adoption: %d refs, %d KiB of layers, du %d -> %d KiB, %s",
		len(content.refs), content.blobs>>10, before, after, time.Since(start).Round(100*time.Millisecond)))
}

// r2StartDistribution runs Distribution on storage (r2DistributionConfig)
// until stop.
func r2StartDistribution(t *testing.T, bin, storage string) (addr string, stop func()) {
	t.Helper()
	addr = freeAddr(t)
	conf := filepath.Join(t.TempDir(), "distribution.yml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(r2DistributionConfig, storage, addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	cmd := exec.Command(bin, "serve", conf)
	// Distribution 2.8's S3 driver cannot start with AWS_CA_BUNDLE set
	// (LoadCustomCABundleError: it brings its own transport); MinIO is
	// plain HTTP here.
	cmd.Env = slices.DeleteFunc(cleanEnv(), func(kv string) bool { return strings.HasPrefix(kv, "AWS_CA_BUNDLE=") })
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(stop)
	pollUntil(t, 15*time.Second, "Distribution answers /v2/", func() error {
		select {
		case <-exited:
			t.Fatalf("Distribution exited:\n%s", log.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		return nil
	})
	return addr, stop
}

// r2Push pushes the test's images with go-containerregistry; one has many
// small layers, so that an import takes long enough to be killed in the
// middle.
func r2Push(t *testing.T, addr string, small int64) r2Content {
	t.Helper()
	c := r2Content{refs: map[string]v1.Hash{}}
	push := func(ref string, img v1.Image) {
		t.Helper()
		r, err := name.ParseReference(addr+"/"+ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(r, img); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
		layers, _ := img.Layers()
		for _, l := range layers {
			size, _ := l.Size()
			c.blobs += size
		}
	}
	image := func(size int64, layers int64) v1.Image {
		img, err := random.Image(size, layers)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	big, v2, gone, many := image(8<<20, 3), image(1<<20, 2), image(512<<10, 1), image(2<<10, small)
	push("app/web:v1", big)
	push("app/web:v2", v2)
	push("app/web:v1", v2) // the tag moves; big stays by digest
	push("app/many:latest", many)
	push("app/gone:1", gone)
	idx, err := random.Index(256<<10, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(addr+"/multi/arch:latest", name.Insecure)
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatalf("push index: %v", err)
	}
	for _, ref := range []string{"app/web:v1", "app/web:v2", "app/many:latest", "multi/arch:latest"} {
		c.refs[ref] = r2Digest(t, addr, ref)
	}
	bigDigest, _ := big.Digest()
	c.refs["app/web@"+bigDigest.String()] = bigDigest
	goneDigest, _ := gone.Digest()
	d, _ := name.NewDigest(addr+"/app/gone@"+goneDigest.String(), name.Insecure)
	if err := remote.Delete(d); err != nil {
		t.Fatalf("delete manifest: %v", err)
	}
	c.deleted = append(c.deleted, "app/gone@"+goneDigest.String())
	return c
}

func r2Digest(t *testing.T, addr, ref string) v1.Hash {
	t.Helper()
	r, _ := name.ParseReference(addr+"/"+ref, name.Insecure)
	desc, err := remote.Head(r)
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return desc.Digest
}

// r2CheckServes pulls every reference from addr: same digest, and every
// image (each of an index's) complete and valid.
func r2CheckServes(t *testing.T, addr string, c r2Content) {
	t.Helper()
	for ref, want := range c.refs {
		r, _ := name.ParseReference(addr+"/"+ref, name.Insecure)
		desc, err := remote.Get(r)
		if err != nil {
			t.Errorf("pull %s from %s: %v", ref, addr, err)
			continue
		}
		if desc.Digest != want {
			t.Errorf("%s on %s: digest %s, want %s", ref, addr, desc.Digest, want)
		}
		if desc.MediaType.IsIndex() {
			idx, err := desc.ImageIndex()
			if err == nil {
				err = validate.Index(idx)
			}
			if err != nil {
				t.Errorf("index %s on %s: %v", ref, addr, err)
			}
			continue
		}
		img, err := desc.Image()
		if err == nil {
			err = validate.Image(img)
		}
		if err != nil {
			t.Errorf("image %s on %s: %v", ref, addr, err)
		}
	}
	for _, ref := range c.deleted {
		if code := headManifest(t, addr, ref); code != http.StatusNotFound {
			t.Errorf("deleted manifest %s: HEAD %d on %s, want 404", ref, code, addr)
		}
	}
}

func headManifest(t *testing.T, addr, ref string) int {
	t.Helper()
	repo, dgst, _ := strings.Cut(ref, "@")
	req, _ := http.NewRequest(http.MethodHead, "http://"+addr+"/v2/"+repo+"/manifests/"+dgst, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// r2StartImporting starts atoll on dir, with env added to its
// environment, without waiting for it to serve.
func r2StartImporting(t *testing.T, dir string, env ...string) *Node {
	t.Helper()
	n := &Node{t: t, addr: freeAddr(t), dataDir: dir, log: &syncBuffer{}, env: env}
	t.Cleanup(func() {
		if n.running() {
			n.Stop()
		}
		if t.Failed() {
			t.Logf("atoll log (%s):\n%s", n.addr, n.log.String())
		}
	})
	cmd := exec.Command(atollBin, "serve", "--config", emptyConf, "--addr", n.addr, "--data", dir)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = n.log, n.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	go func() { n.waitErr = cmd.Wait(); close(n.exited) }()
	return n
}

// r2KillMidImport kills n with SIGKILL once it holds (held) some of the
// total blobs but not half; false when the import finished first (n still
// runs).
func r2KillMidImport(t *testing.T, n *Node, total int, held func() int) bool {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if got := held(); got > 0 && got < total/2 {
			_ = n.cmd.Process.Signal(syscall.SIGKILL)
			<-n.exited
			t.Logf("killed atoll with %d of %d blobs imported", got, total)
			return true
		}
		if strings.Contains(n.log.String(), "registry:2 import done") {
			return false
		}
		select {
		case <-n.exited:
			t.Fatalf("atoll exited during the import: %v", n.waitErr)
		case <-time.After(time.Millisecond): // poll interval inside the deadline loop
		}
	}
	t.Fatal("import neither progressed nor finished within 60s")
	return false
}

// r2ForgetImport removes what atoll wrote, for another attempt.
func r2ForgetImport(t *testing.T, dir string) {
	for _, p := range []string{"blobs", "uploads", "metadata.db", "registry2-import.json", "notify", "fence"} {
		_ = os.RemoveAll(filepath.Join(dir, p))
	}
}

// r2Count counts regular files under dir (named name, if set).
func r2Count(dir, name string) int {
	n := 0
	_ = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() && (name == "" || e.Name() == name) {
			n++
		}
		return nil
	})
	return n
}

// r2CheckLinked checks that every blob atoll holds is registry:2's file,
// hard-linked.
func r2CheckLinked(t *testing.T, dir string) {
	t.Helper()
	checked := 0
	_ = filepath.WalkDir(filepath.Join(dir, "blobs"), func(path string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return nil
		}
		hex := e.Name()
		src := filepath.Join(dir, "docker/registry/v2/blobs/sha256", hex[:2], hex, "data")
		a, errA := os.Stat(path)
		b, errB := os.Stat(src)
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			t.Errorf("blob %s is not registry:2's file hard-linked (%v, %v)", hex, errA, errB)
		}
		checked++
		return nil
	})
	if checked == 0 {
		t.Error("atoll holds no blob")
	}
}

// duKiB is `du -sk dir`: hard-linked files count once.
func duKiB(t *testing.T, dir string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-sk", dir).Output()
	if err != nil {
		t.Fatalf("du: %v", err)
	}
	f := strings.Fields(string(out))
	kib, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		t.Fatalf("du: %q", out)
	}
	return kib
}

// r2CheckDryRun runs atoll import --dry-run: it reports the content and
// adopts nothing.
func r2CheckDryRun(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command(atollBin, "import", "--dry-run", "--json", "--config", emptyConf, dir)
	cmd.Env = cleanEnv()
	cmd.Dir = t.TempDir() // where the default data directory, ./data, would be
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("atoll import --dry-run: %v\n%s", err, out)
	}
	if left, _ := os.ReadDir(cmd.Dir); len(left) > 0 {
		t.Errorf("atoll import --dry-run created %s in its working directory", left[0].Name())
	}
	var rep struct {
		DryRun                             bool
		Blobs, Linked, Manifests, Deleted  int
		Tags, Repositories, Layers, Copied int
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("atoll import --dry-run: %v: %s", err, out)
	}
	// Manifests: big, v2, many, the index and its two images; gone is deleted.
	if !rep.DryRun || rep.Manifests != 6 || rep.Deleted != 1 || rep.Tags != 4 || rep.Repositories != 4 || rep.Blobs == 0 || rep.Linked != rep.Blobs {
		t.Errorf("dry run reported %s", out)
	}
	if got := r2Count(filepath.Join(dir, "blobs"), ""); got != 0 {
		t.Errorf("dry run adopted %d blobs", got)
	}
}
