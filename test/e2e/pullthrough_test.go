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

// Pull-through caches: an atoll whose config names an upstream registry
// serves that registry's images, keeps serving them when it is gone, and
// refuses pushes to the repositories it caches. The helpers here use only
// the harness and go-containerregistry.

// ptManifestTypes is an Accept header for every manifest type.
const ptManifestTypes = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

func TestPullThroughAtollUpstream(t *testing.T) {
	upstream := startNode(t, t.TempDir())
	ptCheckPullThrough(t, upstream.Addr(), upstream.Stop)
}

func TestPullThroughDistributionUpstream(t *testing.T) {
	addr, stop := ptStartDistribution(t, distributionBinary(t))
	ptCheckPullThrough(t, addr, stop)
}

// TestPullThroughBesideLocal caches one prefix (atoll's upstreams list) and
// keeps every other repository local, accepting pushes.
func TestPullThroughBesideLocal(t *testing.T) {
	ctx := context.Background()
	upstream := startNode(t, t.TempDir())
	img := ptImage(t, 2, 4096)
	ptPush(t, upstream.Addr(), "library/app:v1", img)
	conf := ptWriteConfig(t, fmt.Sprintf("upstreams:\n  - prefix: up/\n    remoteurl: http://%s\n", upstream.Addr()))
	cache := ptStartCache(t, conf, "up/library/app", "v1")

	if err := ptPull(ctx, cache.Addr(), "up/library/app:v1", img); err != nil {
		t.Fatal(err)
	}
	local := ptImage(t, 1, 4096)
	ptPush(t, cache.Addr(), "mine/app:v1", local)
	if err := ptPull(ctx, cache.Addr(), "mine/app:v1", local); err != nil {
		t.Fatalf("pull from a local repository beside the cache: %v", err)
	}
	ptCheckPushRefused(t, cache, "up/library/app")
}

// ptCheckPullThrough pushes an image to the registry at upstreamHost, pulls
// it through a cache of it (registry:2's proxy section), follows the tag
// when it moves upstream, calls stop, and pulls again from the cache alone.
func ptCheckPullThrough(t *testing.T, upstreamHost string, stop func()) {
	t.Helper()
	ctx := context.Background()
	first := ptImage(t, 2, 64<<10)
	ptPush(t, upstreamHost, "library/app:v1", first)
	// A TTL of 1ms: every later tag pull asks the upstream.
	conf := ptWriteConfig(t, fmt.Sprintf("proxy:\n  remoteurl: http://%s\n  tagttl: 1ms\n", upstreamHost))
	cache := ptStartCache(t, conf, "library/app", "v1")

	start := time.Now()
	if err := ptPull(ctx, cache.Addr(), "library/app:v1", first); err != nil {
		t.Fatalf("first pull through the cache: %v", err)
	}
	t.Logf("first pull through the cache: %v", time.Since(start))

	second := ptImage(t, 3, 16<<10) // the tag moves upstream
	ptPush(t, upstreamHost, "library/app:v1", second)
	if err := ptPull(ctx, cache.Addr(), "library/app:v1", second); err != nil {
		t.Fatalf("pull after the tag moved upstream: %v", err)
	}

	start = time.Now()
	stop()
	t.Logf("upstream stopped in %v", time.Since(start))
	start = time.Now()
	if err := ptPull(ctx, cache.Addr(), "library/app:v1", second); err != nil {
		t.Fatalf("pull by tag with the upstream stopped: %v", err)
	}
	d, err := first.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := ptPull(ctx, cache.Addr(), "library/app@"+d.String(), first); err != nil {
		t.Fatalf("pull by digest with the upstream stopped: %v", err)
	}
	t.Logf("two pulls from the cache alone, upstream stopped: %v", time.Since(start))
	ptCheckPushRefused(t, cache, "library/app")
}

// ptCheckPushRefused checks that a cached repository answers an upload and
// a manifest push with 405 UNSUPPORTED.
func ptCheckPushRefused(t *testing.T, cache *Node, repo string) {
	t.Helper()
	manifest := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`
	for _, req := range []struct{ method, path, contentType, body string }{
		{"POST", "/v2/" + repo + "/blobs/uploads/", "", ""},
		{"PUT", "/v2/" + repo + "/manifests/pushed", "application/vnd.oci.image.manifest.v1+json", manifest},
	} {
		status, body, err := ptDo(req.method, cache.URL()+req.path, req.contentType, req.body)
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusMethodNotAllowed || !strings.Contains(body, `"UNSUPPORTED"`) {
			t.Errorf("%s %s to a cached repository: %d %s, want 405 UNSUPPORTED", req.method, req.path, status, body)
		}
	}
}

// ptImage is a random image of layers layers of size random bytes.
func ptImage(t *testing.T, layers int, size int64) v1.Image {
	t.Helper()
	img, err := random.Image(size, int64(layers))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// ptRemote makes go-containerregistry fail on the first error, and open a
// connection per request: a pooled client can leave a dialled connection
// that never carries a request, which holds a registry's graceful shutdown
// for 5s (net/http's rule for new connections).
var ptRemote = []remote.Option{
	remote.WithRetryPredicate(func(error) bool { return false }),
	remote.WithRetryStatusCodes(),
	remote.WithTransport(&http.Transport{DisableKeepAlives: true}),
}

// ptPush writes img to host/ref.
func ptPush(t *testing.T, host, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, ptRemote...); err != nil {
		t.Fatalf("push %s: %v", r, err)
	}
}

// ptPull pulls host/ref, checks that it is want, and validates it: every
// blob read in full and its digest checked.
func ptPull(ctx context.Context, host, ref string, want v1.Image) error {
	r, err := name.ParseReference(host+"/"+ref, name.Insecure)
	if err != nil {
		return err
	}
	img, err := remote.Image(r, append([]remote.Option{remote.WithContext(ctx)}, ptRemote...)...)
	if err != nil {
		return fmt.Errorf("pull %s: %w", r, err)
	}
	got, err := img.Digest()
	if err != nil {
		return fmt.Errorf("pull %s: %w", r, err)
	}
	if w, err := want.Digest(); err != nil || got != w {
		return fmt.Errorf("pull %s: got %s, want %s (%v)", r, got, w, err)
	}
	if err := validate.Image(img); err != nil {
		return fmt.Errorf("pull %s: invalid: %w", r, err)
	}
	return nil
}

// ptDo sends one request and returns its status and body.
func ptDo(method, url, contentType, body string) (int, string, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, "", err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", ptManifestTypes)
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func ptWriteConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// ptStartCache starts an atoll with config file conf (the later --config
// wins over the harness's empty one). It fails the test when that atoll
// answers 404 for repo:tag, which its upstream holds: the cache is not
// pulling through.
func ptStartCache(t *testing.T, conf, repo, tag string) *Node {
	t.Helper()
	n := startNodeWith(t, t.TempDir(), nodeOptions{args: []string{"--config", conf}})
	status, body, err := ptDo("GET", n.URL()+"/v2/"+repo+"/manifests/"+tag, "", "")
	if err != nil {
		t.Fatalf("probe the cache: %v", err)
	}
	if status == http.StatusNotFound {
		t.Fatalf("the cache answers 404 for upstream image %s:%s, which its upstream holds: it does not pull through (%s)", repo, tag, strings.TrimSpace(body))
	}
	return n
}

// ptDistributionConfig is CNCF Distribution on loopback with filesystem
// storage and errors-only logging.
const ptDistributionConfig = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
http:
  addr: %q
`

// ptStartDistribution runs CNCF Distribution until the returned stop (or
// the test's end) and returns its address once /v2/ answers.
func ptStartDistribution(t *testing.T, bin string) (addr string, stop func()) {
	t.Helper()
	addr = freeAddr(t)
	conf := ptWriteConfig(t, fmt.Sprintf(ptDistributionConfig, filepath.Join(t.TempDir(), "data"), addr))
	return addr, ptRunDistribution(t, bin, addr, conf)
}

// ptRunDistribution runs CNCF Distribution with config file conf, listening
// on addr, until the returned stop (or the test's end), once /v2/ answers.
func ptRunDistribution(t *testing.T, bin, addr, conf string) (stop func()) {
	t.Helper()
	log := &syncBuffer{}
	cmd := exec.Command(bin, "serve", conf)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop = func() {
		select {
		case <-exited:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("docker-registry log:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("docker-registry exited before it answered:\n%s", log.String())
		default:
		}
		status, _, err := ptDo("GET", "http://"+addr+"/v2/", "", "")
		if err == nil && status == http.StatusOK {
			return stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry not answering /v2/ within 15s (%d, %v):\n%s", status, err, log.String())
		}
		time.Sleep(20 * time.Millisecond) // poll interval inside the deadline loop
	}
}
