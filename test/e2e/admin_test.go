package e2e

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// adminConfig is a single node with htpasswd auth: everyone may push and
// pull, only root may operate the registry (the admin action).
const adminConfig = `version: 0.1
http:
  addr: %q
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
auth:
  htpasswd:
    realm: atoll
    path: %q
  access:
    rules:
      - repositories: ["**"]
        users: ["*"]
        actions: ["*"]
      - users: [root]
        actions: [admin]
`

// adminNode is a single node with htpasswd auth (adminConfig) whose users
// are root, an administrator, and dev, who is not one.
type adminNode struct {
	*Node
	conf      string // its config.yml
	root, dev secUser
}

func startAdminNode(t *testing.T) adminNode {
	t.Helper()
	dir := t.TempDir()
	a := adminNode{conf: filepath.Join(dir, "config.yml"), root: secUser{"root", "root-s3cret"}, dev: secUser{"dev", "dev-s3cret"}}
	htpasswd := secHtpasswd(t, filepath.Join(dir, "htpasswd"), a.root, a.dev)
	addr := freeAddr(t)
	if err := os.WriteFile(a.conf, []byte(fmt.Sprintf(adminConfig, addr, filepath.Join(dir, "data"), htpasswd)), 0o644); err != nil {
		t.Fatal(err)
	}
	a.Node = startNodeWith(t, filepath.Join(dir, "data"), nodeOptions{addr: addr, args: []string{"--config", a.conf}})
	return a
}

// TestAdminOnSecuredNode runs atoll gc, atoll status, atoll backup, atoll
// scrub and registry garbage-collect against a single node with htpasswd auth: an
// administrator's own credentials work (-u with --password-stdin, or the
// Docker credential store), a user who is not one gets 403, no credentials
// 401; so do the cluster status, usage, replication status, metadata
// backup and scrub endpoints.
func TestAdminOnSecuredNode(t *testing.T) {
	a := startAdminNode(t)
	n, conf, root, dev := a.Node, a.conf, a.root, a.dev
	dir := t.TempDir()

	for _, e := range []struct{ method, path string }{
		{"GET", "/_atoll/v1/cluster"}, {"GET", "/_atoll/v1/usage"}, {"GET", "/_atoll/v1/replication"},
		{"GET", "/_atoll/v1/metadata/backup"}, {"POST", "/_atoll/v1/scrub"},
	} {
		for u, want := range map[secUser]int{secAnonymous: 401, dev: 403, root: 200} {
			if r := secDo(t, nil, e.method, n.URL()+e.path, u, nil, nil); r.status != want {
				t.Errorf("%s %s as %q: %d, want %d", e.method, e.path, u.name, r.status, want)
			}
		}
	}

	// An image kept, and one whose manifest is deleted.
	kept, gone := adminPush(t, n.Addr(), "app/kept:1", root), adminPush(t, n.Addr(), "app/gone:1", root)
	goneDigest, _ := gone.Digest()
	ref, _ := name.NewDigest(n.Addr()+"/app/gone@"+goneDigest.String(), name.Insecure)
	if err := remote.Delete(ref, remote.WithAuth(&authn.Basic{Username: root.name, Password: root.password})); err != nil {
		t.Fatal(err)
	}

	atoll := func(env []string, stdin string, args ...string) (string, error) {
		cmd := exec.Command(atollBin, args...)
		cmd.Env = append(cleanEnv(), append(env, "DOCKER_CONFIG="+filepath.Join(dir, "no-docker"))...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, c := range []struct {
		args  []string
		stdin string
		want  string // in the output; "" for success
	}{
		{[]string{"status", "--addr", n.URL()}, "", "401"},
		{[]string{"status", "--addr", n.URL(), "-u", dev.name, "--password-stdin"}, dev.password + "\n", "403"},
		{[]string{"status", "--addr", n.URL(), "-u", root.name, "--password-stdin"}, root.password + "\n", ""},
		{[]string{"status", "--addr", n.URL(), "-u", root.name, "--password-stdin"}, "wrong\n", "401"},
		{[]string{"gc", "--addr", n.URL(), "--grace", "0s", "--dry-run"}, "", "401"},
		{[]string{"gc", "--addr", n.URL(), "--grace", "0s", "--dry-run", "-u", dev.name, "--password-stdin"}, dev.password + "\n", "403"},
		{[]string{"gc", "--addr", n.URL(), "--grace", "0s", "--dry-run", "-u", root.name, "--password-stdin"}, root.password + "\n", ""},
		{[]string{"backup", "--addr", n.URL(), "-o", filepath.Join(dir, "backup.db"), "-u", dev.name, "--password-stdin"}, dev.password + "\n", "403"},
		{[]string{"backup", "--addr", n.URL(), "-o", filepath.Join(dir, "backup.db"), "-u", root.name, "--password-stdin"}, root.password + "\n", ""},
		{[]string{"scrub", "--addr", n.URL()}, "", "401"},
		{[]string{"scrub", "--addr", n.URL(), "-u", dev.name, "--password-stdin"}, dev.password + "\n", "403"},
		{[]string{"scrub", "--addr", n.URL(), "-u", root.name, "--password-stdin"}, root.password + "\n", ""},
	} {
		out, err := atoll(nil, c.stdin, c.args...)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("atoll %s: %v\n%s", strings.Join(c.args, " "), err, out)
		case c.want != "" && (err == nil || !strings.Contains(out, c.want)):
			t.Errorf("atoll %s: %v, want a %s refusal:\n%s", strings.Join(c.args, " "), err, c.want, out)
		}
	}

	// The Docker credential store, as docker login leaves it.
	dockerDir := filepath.Join(dir, "docker")
	if err := os.MkdirAll(dockerDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cred := base64.StdEncoding.EncodeToString([]byte(root.name + ":" + root.password))
	if err := os.WriteFile(filepath.Join(dockerDir, "config.json"), fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, n.Addr(), cred), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(atollBin, "status", "--addr", n.URL())
	cmd.Env = append(cleanEnv(), "DOCKER_CONFIG="+dockerDir)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "MEMBER") {
		t.Errorf("atoll status with docker login's credentials: %v\n%s", err, out)
	}

	// registry:2's command, online against the running node: the deleted
	// manifest's blobs go, the kept image's stay.
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(atollBin, filepath.Join(bin, "registry")); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(filepath.Join(bin, "registry"), "garbage-collect", conf, "-u", root.name, "--password-stdin")
	cmd.Env, cmd.Stdin = cleanEnv(), strings.NewReader(root.password+"\n")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "freed 3 of 6 blobs") {
		t.Fatalf("registry garbage-collect %s: %v\n%s", conf, err, out)
	}
	for _, c := range []struct {
		img  string
		want int
	}{{"kept", 200}, {"gone", 404}} {
		img := kept
		if c.img == "gone" {
			img = gone
		}
		layers, _ := img.Layers()
		for _, l := range layers {
			d, _ := l.Digest()
			if r := secDo(t, nil, "HEAD", n.URL()+"/v2/app/kept/blobs/"+d.String(), root, nil, nil); c.img == "kept" && r.status != c.want {
				t.Errorf("layer %s of the kept image after registry garbage-collect: %d", d, r.status)
			}
			if p := filepath.Join(dir, "data", "blobs", "sha256", d.Hex[:2], d.Hex); c.img == "gone" {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("layer %s of the deleted manifest still on disk after registry garbage-collect:\n%s", d, out)
				}
			}
		}
	}
	if r := secDo(t, nil, "GET", n.URL()+"/v2/app/kept/manifests/1", root, http.Header{"Accept": {"application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"}}, nil); r.status != 200 {
		t.Errorf("kept image after registry garbage-collect: %d", r.status)
	}
}

// adminPush pushes a random image to ref as u.
func adminPush(t *testing.T, addr, ref string, u secUser) v1.Image {
	t.Helper()
	img, err := random.Image(4<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(addr+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithAuth(&authn.Basic{Username: u.name, Password: u.password})); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return img
}
