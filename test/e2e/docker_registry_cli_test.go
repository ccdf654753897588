package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// TestDockerRegistryCLI runs registry:2's commands in atoll's image, as the
// registry:2 guides and cron jobs do: `docker exec … bin/registry
// garbage-collect [--dry-run] /etc/docker/registry/config.yml` against the
// running container frees the blobs of a deleted manifest and only those;
// `docker run --entrypoint htpasswd IMAGE -Bbn USER PASS` makes an htpasswd
// line `docker login` accepts, on a container started registry:2 style with
// a config path as its only argument.
func TestDockerRegistryCLI(t *testing.T) {
	dockerRequireEngine(t)
	dockerBuildAtollImage(t)
	start := time.Now()
	id := compatID()
	t.Run("GarbageCollect", func(t *testing.T) { cliGarbageCollect(t, "registry-gc-"+id) })
	t.Run("Htpasswd", func(t *testing.T) { cliHtpasswd(t, "registry-htpasswd-"+id) })
	reportSummary(fmt.Sprintf("docker registry:2 CLI: %s", time.Since(start).Round(100*time.Millisecond)))
}

func cliGarbageCollect(t *testing.T, container string) {
	port := compatStart(t, container, 0, func(port int) []string {
		return []string{"run", "-d", "-p", fmt.Sprintf("127.0.0.1:%d:5000", port), "--name", container, dockerAtollImage}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	compatWaitReady(t, container, "http://"+addr+"/v2/", dockerHTTP, http.StatusOK)
	if out := compatDocker(t, nil, "", "exec", container, "bin/registry", "--version"); !strings.Contains(out, "registry") {
		t.Errorf("bin/registry --version: %q", out)
	}

	push := func(ref string) v1.Image {
		img, err := random.Image(64<<10, 2)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := name.ParseReference(addr+"/"+ref, name.Insecure)
		if err := remote.Write(r, img); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
		return img
	}
	kept, gone := push("cron/kept:1"), push("cron/gone:1")
	goneDigest, _ := gone.Digest()
	ref, _ := name.NewDigest(addr+"/cron/gone@"+goneDigest.String(), name.Insecure)
	if err := remote.Delete(ref); err != nil {
		t.Fatal(err)
	}
	// What the member holds, from its status (a HEAD of a blob would tell
	// a client it exists, and the GC fence would then rightly spare it).
	held := func() int64 {
		s, err := dockerClusterStatus("http://" + addr)
		if err != nil || len(s.Members) != 1 {
			t.Fatalf("status: %v %+v", err, s)
		}
		return s.Members[0].Blobs
	}
	if h := held(); h != 6 {
		t.Fatalf("before collecting: %d blobs held, want 6 (two images of a config and two layers)", h)
	}
	out := compatDocker(t, nil, "", "exec", container, "bin/registry", "garbage-collect", "--dry-run", "/etc/docker/registry/config.yml")
	t.Logf("bin/registry garbage-collect --dry-run:\n%s", out)
	if !strings.Contains(out, "would free 3 of 6 blobs") {
		t.Errorf("dry run reported %q, want it to name the 3 blobs of the deleted manifest", out)
	}
	if h := held(); h != 6 {
		t.Errorf("after a dry run: %d blobs held, want 6", h)
	}
	out = compatDocker(t, nil, "", "exec", container, "bin/registry", "garbage-collect", "/etc/docker/registry/config.yml")
	t.Logf("bin/registry garbage-collect:\n%s", out)
	if h := held(); h != 3 || !strings.Contains(out, "freed 3 of 6 blobs") {
		t.Errorf("after garbage-collect: %d blobs held, want the kept image's 3", h)
	}
	// The 3 left are the kept image's: it pulls whole.
	r, _ := name.ParseReference(addr+"/cron/kept:1", name.Insecure)
	img, err := remote.Image(r)
	if err == nil {
		err = validate.Image(img)
	}
	if err != nil {
		t.Errorf("kept image after garbage-collect: %v", err)
	}
	if d, _ := kept.Digest(); err == nil {
		if got, _ := img.Digest(); got != d {
			t.Errorf("kept image digest %s, want %s", got, d)
		}
	}
}

func cliHtpasswd(t *testing.T, container string) {
	const user, password = "cronuser", "cron-s3cret"
	line := compatStdout(t, "run", "--rm", "--entrypoint", "htpasswd", dockerAtollImage, "-Bbn", user, password)
	if !strings.HasPrefix(line, user+":$2") || strings.Contains(line, "\n") {
		t.Fatalf("htpasswd -Bbn printed %q, want one line %s:<bcrypt hash>", line, user)
	}
	auth := compatDir(t)
	compatWriteFile(t, filepath.Join(auth, "htpasswd"), line+"\n")
	port := compatStart(t, container, 0, func(port int) []string {
		return []string{"run", "-d", "-p", fmt.Sprintf("%d:5000", port), "--name", container,
			"-v", auth + ":/auth",
			"-e", "REGISTRY_AUTH=htpasswd",
			"-e", "REGISTRY_AUTH_HTPASSWD_REALM=Registry Realm",
			"-e", "REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd",
			dockerAtollImage, "/etc/docker/registry/config.yml"}
	})
	host := fmt.Sprintf("localhost:%d", port)
	compatWaitReady(t, container, fmt.Sprintf("http://127.0.0.1:%d/v2/", port), dockerHTTP, http.StatusUnauthorized)
	cfgDir := t.TempDir()
	env := append(compatWithout(os.Environ(), "DOCKER_CONFIG="), "DOCKER_CONFIG="+cfgDir)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = dockerExec(ctx, env, moduleRoot, "docker", "logout", host)
	})
	if out, err := compatDockerErr(env, "wrong\n", "login", host, "-u", user, "--password-stdin"); err == nil {
		t.Errorf("docker login with a wrong password succeeded:\n%s", out)
	}
	if out := compatDocker(t, env, password+"\n", "login", host, "-u", user, "--password-stdin"); !strings.Contains(out, "Login Succeeded") {
		t.Errorf("docker login said:\n%s", out)
	}
}
