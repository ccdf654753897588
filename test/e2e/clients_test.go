package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// clientBinary finds a real client's binary or skips (fails under CI,
// which installs it) saying how to get it.
func clientBinary(t *testing.T, bin, install string) string {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err == nil {
		return path
	}
	for _, dir := range goBinDirs() {
		if p := dir + "/" + bin; fileExists(p) {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not installed; .ci/run must install it: %s", bin, install)
	}
	t.Skipf("%s not installed (install: %s)", bin, install)
	return ""
}

func goBinDirs() []string {
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return nil
	}
	var dirs []string
	for _, p := range strings.Split(strings.TrimSpace(string(out)), string(os.PathListSeparator)) {
		dirs = append(dirs, p+"/bin")
	}
	return dirs
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// ggcrPush writes img to ref with go-containerregistry.
func ggcrPush(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

func runCmd(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestSkopeo copies an image between repositories with Debian's skopeo and
// inspects the copy.
func TestSkopeo(t *testing.T) {
	skopeo := clientBinary(t, "skopeo", "apt-get install -y skopeo")
	n := startNode(t, t.TempDir())
	img, err := random.Image(64<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	ggcrPush(t, n.Addr()+"/skopeo/src:v1", img)
	runCmd(t, skopeo, "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
		"docker://"+n.Addr()+"/skopeo/src:v1", "docker://"+n.Addr()+"/skopeo/dst:copied")
	var inspected struct {
		Digest string
		Layers []string
	}
	out := runCmd(t, skopeo, "inspect", "--tls-verify=false", "docker://"+n.Addr()+"/skopeo/dst:copied")
	if err := json.Unmarshal([]byte(out), &inspected); err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
	want, _ := img.Digest()
	if len(inspected.Layers) != 3 {
		t.Errorf("copied image has %d layers, want 3", len(inspected.Layers))
	}
	if inspected.Digest != want.String() {
		// skopeo may convert media types; the layers must still be ours.
		layers, _ := img.Layers()
		for i, l := range layers {
			d, _ := l.Digest()
			if inspected.Layers[i] != d.String() {
				t.Errorf("layer %d = %s, want %s", i, inspected.Layers[i], d)
			}
		}
	}
	tags := runCmd(t, skopeo, "list-tags", "--tls-verify=false", "docker://"+n.Addr()+"/skopeo/dst")
	if !strings.Contains(tags, `"copied"`) {
		t.Errorf("skopeo list-tags: %s", tags)
	}
}

// TestCrane pushes, copies, lists and deletes with the crane CLI.
func TestCrane(t *testing.T) {
	crane := clientBinary(t, "crane", "go install github.com/google/go-containerregistry/cmd/crane@v0.22.1")
	n := startNode(t, t.TempDir())
	img, err := random.Image(32<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	ggcrPush(t, n.Addr()+"/crane/a:v1", img)
	runCmd(t, crane, "copy", "--insecure", n.Addr()+"/crane/a:v1", n.Addr()+"/crane/b:v2")
	if got := strings.TrimSpace(runCmd(t, crane, "ls", "--insecure", n.Addr()+"/crane/b")); got != "v2" {
		t.Errorf("crane ls = %q", got)
	}
	d := strings.TrimSpace(runCmd(t, crane, "digest", "--insecure", n.Addr()+"/crane/b:v2"))
	if want, _ := img.Digest(); d != want.String() {
		t.Errorf("crane digest = %s, want %s", d, want)
	}
	runCmd(t, crane, "delete", "--insecure", n.Addr()+"/crane/b@"+d)
	if out, err := exec.Command(crane, "manifest", "--insecure", n.Addr()+"/crane/b:v2").CombinedOutput(); err == nil {
		t.Errorf("manifest still there after delete: %s", out)
	}
	catalog := runCmd(t, crane, "catalog", "--insecure", n.Addr())
	if !strings.Contains(catalog, "crane/a") {
		t.Errorf("crane catalog: %s", catalog)
	}
}
