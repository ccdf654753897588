package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/api/ui"
)

// uiServedByNode says whether atoll serve mounts ui.Handler on /ui/ itself.
// While false, the test loads the interface from an in-process front that
// serves ui.Handler and forwards the API to the node.
const uiServedByNode = true

// TestUIHeadless loads the web interface in headless Chromium against a
// node holding a few images, and checks that the pages rendered what the
// registry holds (which proves the scripts ran under the CSP) and that the
// screenshots are not blank.
func TestUIHeadless(t *testing.T) {
	browser := uiChromium(t)
	node := startNode(t, t.TempDir())
	fixture := uiPushFixture(t, node.URL())

	base := node.URL()
	if !uiServedByNode {
		base = uiFront(t, node.URL())
	}
	shots := t.TempDir()

	for _, page := range []struct {
		name     string
		fragment string
		want     []string // substrings of the rendered DOM
	}{
		{"repositories", "#/", []string{
			`data-view="repositories"`, `data-name="uitest/web"`, `data-name="uitest/tools/cli"`,
			`data-name="uitest/multi"`, "3 repositories",
		}},
		{"repository", "#/repo/uitest/web", []string{
			`data-view="repository"`, `data-tag="1.0"`, `data-tag="latest"`,
			fixture.web.String(), "3 hours ago",
		}},
		{"index", "#/manifest/uitest/multi:stable", []string{
			`data-view="manifest"`, "linux/amd64", "linux/arm64/v8", "OCI index", "(all 2 manifests)",
		}},
		{"manifest", "#/manifest/uitest/web:1.0", []string{
			`data-view="manifest"`, "Layers", "SBOM", "application/spdx+json", fixture.sbom.String(),
		}},
		{"cluster", "#/cluster", []string{
			`data-view="cluster"`, "state-alive", "100.0%",
		}},
	} {
		t.Run(page.name, func(t *testing.T) {
			uiCheckPage(t, browser, base+"/ui/"+page.fragment, filepath.Join(shots, page.name+".png"),
				append([]string{`data-state="ready"`}, page.want...))
		})
	}

	// With auth on, a browser that has not signed in gets 401 from the API;
	// the page must say so instead of failing silently. atoll serve has no
	// flag for auth, so a front answers 401 with atoll's error body. It sends
	// no Basic challenge: headless Chromium would wait on the password
	// prompt that a desktop browser shows.
	t.Run("signin", func(t *testing.T) {
		mux := http.NewServeMux()
		mux.Handle("/ui/", ui.Handler())
		mux.HandleFunc("/v2/", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		})
		srv := httptest.NewServer(mux)
		defer srv.Close()
		uiCheckPage(t, browser, srv.URL+"/ui/#/", filepath.Join(shots, "signin.png"),
			[]string{`data-state="error"`, "Sign in required", "Try again"})
	})
}

// uiCheckPage loads pageURL in headless Chromium, checks that the rendered
// DOM holds every string in want, and that the screenshot, saved to shot,
// is not blank.
func uiCheckPage(t *testing.T, browser, pageURL, shot string, want []string) {
	t.Helper()
	dom := uiRunChromium(t, browser, pageURL, "--dump-dom", "--screenshot="+shot)
	for _, w := range want {
		if !strings.Contains(dom, w) {
			t.Errorf("%s: rendered DOM lacks %q:\n%s", pageURL, w, uiMain(dom))
		}
	}
	colours := uiDistinctColours(t, shot)
	t.Logf("screenshot of %s: %s (%d colours)", pageURL, shot, colours)
	if colours < 32 {
		t.Errorf("screenshot %s has %d distinct colours; the page looks blank", shot, colours)
	}
	if dir := os.Getenv("ATOLL_UI_SCREENSHOT_DIR"); dir != "" {
		uiCopyFile(t, shot, filepath.Join(dir, filepath.Base(shot)))
	}
}

// uiChromium finds the browser, or skips the test (fails it under CI).
func uiChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	missingTool(t, "no chromium or chromium-browser on PATH for the web UI test", "apt-get install chromium")
	return ""
}

// uiFront serves the interface in this process and forwards the API to
// the node at nodeURL, as the node will once it mounts /ui/.
func uiFront(t *testing.T, nodeURL string) string {
	t.Helper()
	target, err := url.Parse(nodeURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	mux := http.NewServeMux()
	mux.Handle("/ui/", ui.Handler())
	mux.Handle("/v2/", proxy)
	mux.Handle("/_atoll/", proxy)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// consoleProblem matches what Chromium logs for a script error or a CSP
// violation.
var consoleProblem = regexp.MustCompile(`Uncaught|Refused to|Content Security Policy|Failed to load module`)

// uiRunChromium runs one headless Chromium on pageURL with the given mode
// flags (--dump-dom, --screenshot=<file>) and returns its stdout. It fails
// the test on a script error or CSP violation in the console.
func uiRunChromium(t *testing.T, browser, pageURL string, modes ...string) string {
	t.Helper()
	profile := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{
		"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--hide-scrollbars", "--mute-audio", "--enable-logging=stderr", "--v=0",
		"--user-data-dir=" + profile, "--window-size=1280,900", "--virtual-time-budget=5000",
	}
	cmd := exec.CommandContext(ctx, browser, append(append(args, modes...), pageURL)...)
	cmd.Env = append(os.Environ(), "HOME="+profile, "XDG_CONFIG_HOME="+profile, "XDG_CACHE_HOME="+profile)
	cmd.WaitDelay = 5 * time.Second // helper processes may hold the pipes briefly
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(browser), pageURL, err, stderr.String())
	}
	t.Logf("chromium %s: %v", pageURL, time.Since(start).Round(time.Millisecond))
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, "CONSOLE") && consoleProblem.MatchString(line) {
			t.Errorf("browser console: %s", line)
		}
	}
	return stdout.String()
}

// uiMain cuts the <main> element out of a dumped DOM, for failure messages.
func uiMain(dom string) string {
	if i := strings.Index(dom, "<main"); i >= 0 {
		dom = dom[i:]
	}
	if i := strings.Index(dom, "</main>"); i >= 0 {
		dom = dom[:i+len("</main>")]
	}
	return dom
}

// uiDistinctColours counts the colours of a PNG file, up to 1000.
func uiDistinctColours(t *testing.T, file string) int {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", file, err)
	}
	b := img.Bounds()
	if b.Dx() < 640 || b.Dy() < 480 {
		t.Errorf("screenshot %s is %dx%d, want the 1280x900 window", file, b.Dx(), b.Dy())
	}
	seen := map[[4]uint32]bool{}
	for y := b.Min.Y; y < b.Max.Y && len(seen) < 1000; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
		}
	}
	return len(seen)
}

func uiCopyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err == nil {
		err = os.WriteFile(to, data, 0o644)
	}
	if err != nil {
		t.Errorf("keeping screenshot: %v", err)
	}
}

// uiFixture is what uiPushFixture stored.
type uiFixture struct {
	web  digest.Digest // uitest/web:1.0 and :latest
	sbom digest.Digest // an SBOM whose subject is web
}

// uiPushFixture pushes two images with tags, a two-platform index, and an
// SBOM referring to the first image.
func uiPushFixture(t *testing.T, base string) uiFixture {
	t.Helper()
	host := strings.TrimPrefix(base, "http://")
	now := time.Now()
	web := uiImage(t, now.Add(-3*time.Hour), "", "", "")
	cli := uiImage(t, now.Add(-50*time.Hour), "", "", "")
	uiWrite(t, host+"/uitest/web:1.0", web)
	uiWrite(t, host+"/uitest/web:latest", web)
	uiWrite(t, host+"/uitest/tools/cli:v2", cli)

	amd64 := uiImage(t, now.Add(-time.Hour), "linux", "amd64", "")
	arm64 := uiImage(t, now.Add(-time.Hour), "linux", "arm64", "v8")
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm64, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	), types.OCIImageIndex)
	ref, err := name.ParseReference(host+"/uitest/multi:stable", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}

	webDigest, err := web.Digest()
	if err != nil {
		t.Fatal(err)
	}
	webManifest, err := web.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	webType, err := web.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	subject := ocispec.Descriptor{MediaType: string(webType), Digest: digest.Digest(webDigest.String()), Size: int64(len(webManifest))}
	return uiFixture{web: subject.Digest, sbom: uiPushSBOM(t, base, "uitest/web", subject)}
}

// uiImage is a small random image created at created, with a platform
// when goos is set.
func uiImage(t *testing.T, created time.Time, goos, arch, variant string) v1.Image {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: created.UTC().Truncate(time.Second)}
	cfg.OS, cfg.Architecture, cfg.Variant = goos, arch, variant
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	return img
}

func uiWrite(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// uiPushSBOM stores an SPDX artifact whose subject is subject, with raw
// HTTP, and returns its digest.
func uiPushSBOM(t *testing.T, base, repo string, subject ocispec.Descriptor) digest.Digest {
	t.Helper()
	const spdx = "application/spdx+json"
	config := []byte("{}")
	sbom := []byte(`{"spdxVersion":"SPDX-2.3","name":"uitest-web","packages":[]}`)
	for _, blob := range [][]byte{config, sbom} {
		uiHTTP(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(blob).String(), "application/octet-stream", blob, http.StatusCreated)
	}
	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: spdx,
		Config:       ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: digest.FromBytes(config), Size: int64(len(config))},
		Layers:       []ocispec.Descriptor{{MediaType: spdx, Digest: digest.FromBytes(sbom), Size: int64(len(sbom))}},
		Subject:      &subject,
		Annotations:  map[string]string{ocispec.AnnotationCreated: time.Now().UTC().Format(time.RFC3339)},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(manifest)
	uiHTTP(t, http.MethodPut, base+"/v2/"+repo+"/manifests/"+d.String(), ocispec.MediaTypeImageManifest, manifest, http.StatusCreated)
	return d
}

func uiHTTP(t *testing.T, method, u, contentType string, body []byte, want int) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, u, resp.StatusCode, want, msg)
	}
}
