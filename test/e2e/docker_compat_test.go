package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestDockerRegistry2Compat runs the registry:2 image's documented seed
// workflows unchanged against atoll:latest: the same `docker run` flags,
// volumes, environment variables and mounted files, with only the image
// name (and, where 5000 is taken, the host port) changed.
//
//   - Basic: `docker run -d -p 5000:5000 --restart=always --name registry`,
//     then docker build, push, rmi, pull and GET /v2/_catalog.
//   - Volume: `-v registry-data:/var/lib/registry`; the data outlives the
//     container (docker rm -f, a new container, pull).
//   - TLS: REGISTRY_HTTP_ADDR=0.0.0.0:443 with REGISTRY_HTTP_TLS_CERTIFICATE
//     and _KEY from a mounted /certs; a client trusting only that
//     certificate gets GET /v2/ and push/pull; the HEALTHCHECK is healthy.
//   - Htpasswd: the file made by the image itself (atoll htpasswd, the
//     replacement for `docker run --entrypoint htpasswd httpd:2 -Bbn`),
//     REGISTRY_AUTH=htpasswd; docker login, push, pull, logout; a wrong
//     password is refused.
//   - ConfigYML: the config.yml registry:2 ships, mounted at
//     /etc/docker/registry/config.yml, loads with warnings only.
//
// Every container, volume, local image, certs.d entry and temporary file
// is removed by t.Cleanup, pass or fail.
func TestDockerRegistry2Compat(t *testing.T) {
	dockerRequireEngine(t)
	start := time.Now()
	t.Cleanup(func() { dockerReport(t, "TestDockerRegistry2Compat", start) }) // runs last
	dockerBuildAtollImage(t)

	id := compatID()
	for _, sub := range []struct {
		name string
		run  func(t *testing.T, id string)
	}{
		{"Basic", compatBasic},
		{"Volume", compatVolume},
		{"TLS", compatTLS},
		{"Htpasswd", compatHtpasswd},
		{"ConfigYML", compatConfigYML},
	} {
		t.Run(sub.name, func(t *testing.T) {
			start := time.Now()
			t.Cleanup(func() { dockerReport(t, t.Name(), start) }) // runs after the subtest's own cleanup
			sub.run(t, id+"-"+strings.ToLower(sub.name))
		})
	}
}

// compatBasic is the registry:2 quick start: run, push, pull, catalog.
func compatBasic(t *testing.T, id string) {
	container := "registry-" + id
	port := compatStart(t, container, 5000, func(port int) []string {
		return []string{"run", "-d", "-p", fmt.Sprintf("%d:5000", port), "--restart=always", "--name", container, dockerAtollImage}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	compatWaitReady(t, container, base+"/v2/", dockerHTTP, http.StatusOK)

	ref := fmt.Sprintf("localhost:%d/compat/hello:1", port)
	compatPushPull(t, nil, ref, "hello from "+id+"\n")
	if err := compatCatalogHas(dockerHTTP, base, "", "", "compat/hello"); err != nil {
		t.Error(err)
	}
	compatStillRunning(t, container)
}

// compatVolume keeps the registry's data in a named volume across
// containers.
func compatVolume(t *testing.T, id string) {
	volume := "registry-data-" + id
	// Registered first, so it runs after the containers are gone.
	t.Cleanup(func() { dockerQuiet(t, "volume", "rm", "--force", volume) })

	first, second := "registry-"+id+"-1", "registry-"+id+"-2"
	args := func(container string) func(port int) []string {
		return func(port int) []string {
			return []string{"run", "-d", "-p", fmt.Sprintf("%d:5000", port), "--restart=always", "--name", container,
				"-v", volume + ":/var/lib/registry", dockerAtollImage}
		}
	}
	port := compatStart(t, first, 0, args(first))
	compatWaitReady(t, first, fmt.Sprintf("http://127.0.0.1:%d/v2/", port), dockerHTTP, http.StatusOK)
	ref := fmt.Sprintf("localhost:%d/compat/hello:1", port)
	dockerBuildHello(t, ref, "hello from "+id+"\n")
	t.Cleanup(func() { dockerRemoveImages(ref) })
	compatDocker(t, nil, "", "push", ref)
	compatDocker(t, nil, "", "rmi", ref)

	compatDocker(t, nil, "", "rm", "-f", first)
	if out := compatDocker(t, nil, "", "volume", "ls", "--quiet", "--filter", "name=^"+volume+"$"); out != volume {
		t.Fatalf("volume %s gone after docker rm -f (docker volume ls: %q)", volume, out)
	}

	// The same host port when it is still free, so the same reference.
	port2 := compatStart(t, second, port, args(second))
	base := fmt.Sprintf("http://127.0.0.1:%d", port2)
	compatWaitReady(t, second, base+"/v2/", dockerHTTP, http.StatusOK)
	ref2 := fmt.Sprintf("localhost:%d/compat/hello:1", port2)
	if ref2 != ref {
		t.Cleanup(func() { dockerRemoveImages(ref2) })
	}
	compatPullFresh(t, nil, ref2)
	if err := compatCatalogHas(dockerHTTP, base, "", "", "compat/hello"); err != nil {
		t.Error(err)
	}
	compatStillRunning(t, second)
}

// compatTLS serves HTTPS on :443 in the container with a self-signed
// certificate, as registry:2's "Run an externally-accessible registry".
func compatTLS(t *testing.T, id string) {
	certs := compatDir(t)
	certPEM := compatSelfSigned(t, certs)
	container := "registry-" + id
	port := compatStart(t, container, 0, func(port int) []string {
		return []string{"run", "-d", "--restart=always", "--name", container,
			"-v", certs + ":/certs",
			"-e", "REGISTRY_HTTP_ADDR=0.0.0.0:443",
			"-e", "REGISTRY_HTTP_TLS_CERTIFICATE=/certs/domain.crt",
			"-e", "REGISTRY_HTTP_TLS_KEY=/certs/domain.key",
			"-p", fmt.Sprintf("%d:443", port),
			dockerAtollImage}
	})
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("the generated certificate does not parse")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	host := fmt.Sprintf("localhost:%d", port)
	base := "https://" + host

	// GET /v2/ over HTTPS, verified against the generated certificate only.
	compatWaitReady(t, container, base+"/v2/", client, http.StatusOK)
	t.Logf("GET %s/v2/: 200 over TLS, certificate verified against the generated self-signed one", base)
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/v2/"); err == nil {
		t.Errorf("a client with only the system roots accepted %s's certificate; want an unknown-authority error", base)
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client without the certificate failed for another reason than the certificate: %v", err)
	}

	// Push and pull with go-containerregistry over the verifying transport.
	ggcrRef := host + "/compat/ggcr:1"
	ref, err := name.ParseReference(ggcrRef)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := remote.Write(ref, img, remote.WithTransport(tr), remote.WithContext(ctx)); err != nil {
		t.Fatalf("go-containerregistry push of %s over TLS: %v", ggcrRef, err)
	}
	want, _ := img.Digest()
	got, err := remote.Image(ref, remote.WithTransport(tr), remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("go-containerregistry pull of %s over TLS: %v", ggcrRef, err)
	}
	if d, _ := got.Digest(); d != want {
		t.Errorf("pulled %s as %s, pushed %s", ggcrRef, d, want)
	}
	layers, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err == nil {
			_, err = io.Copy(io.Discard, rc) // verifies the digest at EOF
			rc.Close()
		}
		if err != nil {
			t.Errorf("pulling a layer of %s over TLS: %v", ggcrRef, err)
		}
	}
	t.Logf("go-containerregistry pushed and pulled %s@%s over TLS, verifying the certificate", ggcrRef, want)
	repos := []string{"compat/ggcr"}

	// docker push/pull over TLS, when the daemon's certs.d can take the CA.
	if why := compatCertsD(t, host, certPEM); why != "" {
		t.Logf("docker push over TLS not run: %s; the TLS push/pull above used go-containerregistry", why)
	} else {
		if cidrs := compatInsecureCIDRs(); slices.Contains(cidrs, "127.0.0.0/8") {
			t.Logf("note: the engine lists %v as insecure registries, so for %s it speaks TLS without verifying the "+
				"certificate and does not read certs.d; the certificate itself was verified by the Go clients above", cidrs, host)
		}
		dockerRef := host + "/compat/hello:1"
		compatPushPull(t, nil, dockerRef, "hello over TLS from "+id+"\n")
		t.Logf("docker pushed and pulled %s (atoll serves only HTTPS on that port)", dockerRef)
		repos = append(repos, "compat/hello")
	}
	if err := compatCatalogHas(client, base, "", "", repos...); err != nil {
		t.Error(err)
	}

	// The image's HEALTHCHECK follows REGISTRY_HTTP_ADDR and the TLS
	// variables (atoll healthcheck on https://127.0.0.1:443).
	dockerWaitFor(t, 90*time.Second, container+"'s HEALTHCHECK healthy in TLS mode", func() error {
		h := compatDocker(t, nil, "", "inspect", "--format", "{{.State.Health.Status}}", container)
		if h != "healthy" {
			return fmt.Errorf("health status %q", h)
		}
		return nil
	})
	t.Logf("%s: HEALTHCHECK healthy", container)
	compatStillRunning(t, container)
}

// compatHtpasswd is registry:2's "Native basic auth" with the htpasswd file
// made by atoll's own image.
func compatHtpasswd(t *testing.T, id string) {
	const user, password = "testuser", "testpassword"
	line := compatStdout(t, "run", "--rm", "--entrypoint", "/usr/local/bin/atoll", dockerAtollImage, "htpasswd", user, password)
	if !strings.HasPrefix(line, user+":$2") || strings.Count(line, "\n") > 0 {
		t.Fatalf("atoll htpasswd printed %q, want one line %s:<bcrypt hash>", line, user)
	}
	auth := compatDir(t)
	compatWriteFile(t, filepath.Join(auth, "htpasswd"), line+"\n")

	container := "registry-" + id
	port := compatStart(t, container, 0, func(port int) []string {
		return []string{"run", "-d", "-p", fmt.Sprintf("%d:5000", port), "--restart=always", "--name", container,
			"-v", auth + ":/auth",
			"-e", "REGISTRY_AUTH=htpasswd",
			"-e", "REGISTRY_AUTH_HTPASSWD_REALM=Registry Realm",
			"-e", "REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd",
			dockerAtollImage}
	})
	host := fmt.Sprintf("localhost:%d", port)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	compatWaitReady(t, container, base+"/v2/", dockerHTTP, http.StatusUnauthorized)
	resp, err := dockerHTTP.Get(base + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.Header.Get("WWW-Authenticate"), `Basic realm="Registry Realm"`; got != want {
		t.Errorf("GET /v2/ without credentials: WWW-Authenticate %q, want %q", got, want)
	}

	// The docker CLI keeps its credentials in a configuration directory of
	// this test's own, so none can reach the user's ~/.docker/config.json,
	// even if the test is killed before its cleanup.
	cfgDir := t.TempDir()
	env := append(compatWithout(os.Environ(), "DOCKER_CONFIG="), "DOCKER_CONFIG="+cfgDir)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = dockerExec(ctx, env, moduleRoot, "docker", "logout", host)
		if err := compatNoCredentials(filepath.Join(cfgDir, "config.json"), host); err != nil {
			t.Errorf("after docker logout: %v", err)
		}
	})

	if out, err := compatDockerErr(env, "wrongpassword\n", "login", host, "-u", user, "--password-stdin"); err == nil {
		t.Errorf("docker login with a wrong password succeeded:\n%s", out)
	} else {
		t.Logf("docker login with a wrong password refused: %s", compatLastLine(out))
	}
	out := compatDocker(t, env, password+"\n", "login", host, "-u", user, "--password-stdin")
	if !strings.Contains(out, "Login Succeeded") {
		t.Errorf("docker login said:\n%s", out)
	}

	ref := host + "/compat/hello:1"
	compatPushPull(t, env, ref, "hello with auth from "+id+"\n")
	if err := compatCatalogHas(dockerHTTP, base, user, password, "compat/hello"); err != nil {
		t.Error(err)
	}
	if err := compatCatalogHas(dockerHTTP, base, user, "wrongpassword", "compat/hello"); err == nil {
		t.Error("GET /v2/_catalog with a wrong password answered 200")
	}

	out = compatDocker(t, env, "", "logout", host)
	if err := compatNoCredentials(filepath.Join(cfgDir, "config.json"), host); err != nil {
		t.Errorf("docker logout (%s): %v", out, err)
	}
	dockerRemoveImages(ref)
	if out, err := compatDockerErr(env, "", "pull", ref); err == nil {
		t.Errorf("docker pull after docker logout succeeded:\n%s", out)
	} else {
		t.Logf("docker pull after logout refused: %s", compatLastLine(out))
	}
	compatStillRunning(t, container)
}

// compatRegistry2Config is the config.yml the registry:2 image ships at
// /etc/docker/registry/config.yml (distribution-library-image's
// config-example.yml for 2.7 and 2.8), byte for byte.
const compatRegistry2Config = `version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
`

// compatConfigYML mounts registry:2's own config.yml over atoll's.
func compatConfigYML(t *testing.T, id string) {
	dir := compatDir(t)
	file := filepath.Join(dir, "config.yml")
	compatWriteFile(t, file, compatRegistry2Config)

	container := "registry-" + id
	port := compatStart(t, container, 0, func(port int) []string {
		return []string{"run", "-d", "-p", fmt.Sprintf("%d:5000", port), "--restart=always", "--name", container,
			"-v", file + ":/etc/docker/registry/config.yml", dockerAtollImage}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	compatWaitReady(t, container, base+"/v2/", dockerHTTP, http.StatusOK)

	ref := fmt.Sprintf("localhost:%d/compat/hello:1", port)
	compatPushPull(t, nil, ref, "hello with registry:2's config from "+id+"\n")
	if err := compatCatalogHas(dockerHTTP, base, "", "", "compat/hello"); err != nil {
		t.Error(err)
	}

	// Keys atoll does not use are warnings, never errors.
	logs := compatDocker(t, nil, "", "logs", container)
	var warns []string
	for _, l := range strings.Split(logs, "\n") {
		switch {
		case strings.Contains(l, "level=ERROR"):
			t.Errorf("error logged with registry:2's config.yml: %s", l)
		case strings.Contains(l, "level=WARN"):
			warns = append(warns, l)
		}
	}
	t.Logf("warnings for registry:2's config.yml:\n%s", strings.Join(warns, "\n"))
	for _, key := range []string{"log.fields", "health"} {
		if !slices.ContainsFunc(warns, func(l string) bool { return strings.Contains(l, "key="+key) }) {
			t.Errorf("no warning names the unused key %s; logs:\n%s", key, logs)
		}
	}

	// http.headers: registry:2 sends them on every answer. atoll must
	// send them or, per its README, warn that it does not use the key.
	resp, err := dockerHTTP.Get(base + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := resp.Header.Get("X-Content-Type-Options")
	warned := slices.ContainsFunc(warns, func(l string) bool { return strings.Contains(l, "key=http.headers") })
	switch {
	case got == "nosniff":
		t.Logf("http.headers applied: GET /v2/ answers X-Content-Type-Options: nosniff")
	case warned:
		t.Logf("http.headers not applied and warned about")
	default:
		t.Errorf("http.headers (X-Content-Type-Options: [nosniff]) is neither applied (GET /v2/ sends %q) "+
			"nor logged as an unused key", got)
	}
	compatStillRunning(t, container)
}

// compatID names this run's containers and volumes: the process and a
// random suffix, so concurrent runs do not collide.
func compatID() string {
	b := make([]byte, 3)
	_, _ = crand.Read(b)
	return fmt.Sprintf("compat%d-%s", os.Getpid(), hex.EncodeToString(b))
}

// compatPort returns preferred when it can be bound on all interfaces (as
// Docker publishes), else a free port.
func compatPort(t *testing.T, preferred int) int {
	t.Helper()
	if preferred > 0 {
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", preferred))
		if err == nil {
			ln.Close()
			return preferred
		}
		t.Logf("host port %d is busy (%v); using a free one", preferred, err)
	}
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// compatStart runs `docker run` with the arguments argv builds for a host
// port (preferred if free, else a free one; again with another one if the
// engine finds it taken) and returns the port. Cleanup logs the
// container's output if the test failed, then removes it with its
// anonymous volumes (the image declares VOLUME /var/lib/registry); named
// volumes stay.
func compatStart(t *testing.T, container string, preferred int, argv func(port int) []string) int {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			compatLogs(t, container)
		}
		dockerQuiet(t, "rm", "--force", "--volumes", container)
	})
	for attempt := 1; ; attempt++ {
		port := compatPort(t, preferred)
		args := argv(port)
		t.Logf("docker %s", strings.Join(args, " "))
		out, err := compatDockerErr(nil, "", args...)
		if err == nil {
			return port
		}
		if attempt < 3 && (strings.Contains(out, "port is already allocated") || strings.Contains(out, "address already in use")) {
			t.Logf("host port %d taken meanwhile; retrying on another", port)
			dockerQuiet(t, "rm", "--force", "--volumes", container)
			preferred = 0
			continue
		}
		t.Fatal(err)
	}
}

// compatWaitReady polls url until it answers want, failing early (with the
// container's logs) if the container exits or restarts.
func compatWaitReady(t *testing.T, container, url string, client *http.Client, want int) {
	t.Helper()
	start := time.Now()
	dockerWaitFor(t, 60*time.Second, container+" answering GET "+url, func() error {
		compatStillRunning(t, container)
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("GET %s: %s, want %d", url, resp.Status, want)
		}
		return nil
	})
	t.Logf("%s answers GET %s with %d after %s", container, url, want, time.Since(start).Round(10*time.Millisecond))
}

// compatStillRunning fails the test, with the container's logs, unless it
// runs and has never been restarted (--restart=always would hide a crash).
func compatStillRunning(t *testing.T, container string) {
	t.Helper()
	state := compatDocker(t, nil, "", "inspect", "--format", "{{.State.Status}} {{.RestartCount}}", container)
	if state != "running 0" {
		t.Fatalf("container %s: state and restart count %q, want \"running 0\"", container, state)
	}
}

func compatLogs(t *testing.T, container string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := dockerExec(ctx, nil, moduleRoot, "docker", "logs", "--tail", "200", container)
	if err != nil {
		t.Logf("docker logs %s: %v", container, err)
		return
	}
	t.Logf("docker logs %s:\n%s", container, out)
}

// compatDockerErr runs `docker args...` with env (nil: this process's) and
// stdin, and returns the combined output, trimmed.
func compatDockerErr(env []string, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Dir = moduleRoot
	cmd.Env = env
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, s)
	}
	return s, nil
}

// compatDocker is compatDockerErr failing the test on error.
func compatDocker(t *testing.T, env []string, stdin string, args ...string) string {
	t.Helper()
	out, err := compatDockerErr(env, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// compatStdout runs `docker args...` and returns its standard output only,
// trimmed.
func compatStdout(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// compatPushPull builds a one-file image as ref, pushes it, removes it
// (docker rmi) and pulls it back.
func compatPushPull(t *testing.T, env []string, ref, content string) {
	t.Helper()
	dockerBuildHello(t, ref, content)
	t.Cleanup(func() { dockerRemoveImages(ref) })
	compatDocker(t, env, "", "push", ref)
	compatDocker(t, env, "", "rmi", ref)
	compatPullFresh(t, env, ref)
}

// compatPullFresh pulls ref after removing it locally and checks that a
// layer was downloaded.
func compatPullFresh(t *testing.T, env []string, ref string) {
	t.Helper()
	dockerRemoveImages(ref)
	out := compatDocker(t, env, "", "pull", ref)
	if !strings.Contains(out, "Pull complete") {
		t.Errorf("docker pull %s downloaded no layer:\n%s", ref, out)
	}
	t.Logf("pushed, removed and pulled %s", ref)
}

// compatCatalogHas checks that GET base/v2/_catalog (with Basic
// credentials when user is set) answers 200 and lists every repo.
func compatCatalogHas(client *http.Client, base, user, password string, repos ...string) error {
	req, err := http.NewRequest(http.MethodGet, base+"/v2/_catalog", nil)
	if err != nil {
		return err
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s/v2/_catalog: %s: %s", base, resp.Status, bytes.TrimSpace(body))
	}
	var cat struct {
		Repositories []string `json:"repositories"`
	}
	if err := json.Unmarshal(body, &cat); err != nil {
		return fmt.Errorf("GET %s/v2/_catalog: %w: %s", base, err, body)
	}
	for _, r := range repos {
		if !slices.Contains(cat.Repositories, r) {
			return fmt.Errorf("GET %s/v2/_catalog lacks %s: %s", base, r, bytes.TrimSpace(body))
		}
	}
	return nil
}

// compatDir is a temporary directory the image's user (65532) can read
// when it is bind-mounted.
func compatDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func compatWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
}

// compatSelfSigned writes domain.crt and domain.key into dir: a
// self-signed certificate for localhost, 127.0.0.1 and ::1, valid for a
// day. It returns the certificate's PEM. The key is world-readable so the
// container's user can read it; the directory goes with the test.
func compatSelfSigned(t *testing.T, dir string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := crand.Int(crand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"atoll e2e"}},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // its own CA, so it can be a ca.crt too
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	compatWriteFile(t, filepath.Join(dir, "domain.crt"), string(certPEM))
	compatWriteFile(t, filepath.Join(dir, "domain.key"), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	return certPEM
}

// compatCertsD installs the certificate as the engine's CA for host
// (/etc/docker/certs.d/<host>/ca.crt) and removes it, and any directory it
// made, in cleanup. It returns why it did not, or "" when it did. The
// engine must run on this machine for its certs.d to be this one.
func compatCertsD(t *testing.T, host string, certPEM []byte) string {
	t.Helper()
	if h := os.Getenv("DOCKER_HOST"); h != "" && !strings.HasPrefix(h, "unix://") {
		return "DOCKER_HOST=" + h + " is not a local engine, so its /etc/docker/certs.d is not this machine's"
	}
	root := "/etc/docker/certs.d"
	dir := filepath.Join(root, host)
	var made []string // directories this test creates, deepest last
	for _, d := range []string{root, dir} {
		if _, err := os.Stat(d); errors.Is(err, fs.ErrNotExist) {
			if err := os.Mkdir(d, 0o755); err != nil {
				compatRemoveAll(t, made)
				return fmt.Sprintf("cannot create %s: %v", d, err)
			}
			made = append(made, d)
		}
	}
	file := filepath.Join(dir, "ca.crt")
	if _, err := os.Stat(file); err == nil {
		compatRemoveAll(t, made)
		return file + " already exists (not ours to replace)"
	}
	if err := os.WriteFile(file, certPEM, 0o644); err != nil {
		compatRemoveAll(t, made)
		return fmt.Sprintf("cannot write %s: %v", file, err)
	}
	t.Cleanup(func() {
		if err := os.Remove(file); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		compatRemoveAll(t, made)
	})
	t.Logf("wrote %s", file)
	return ""
}

// compatRemoveAll removes the directories made, deepest first, each only
// if empty (another test may have put something in /etc/docker/certs.d).
func compatRemoveAll(t *testing.T, made []string) {
	for i := len(made) - 1; i >= 0; i-- {
		if err := os.Remove(made[i]); err != nil {
			t.Logf("cleanup: leaving %s: %v", made[i], err)
		}
	}
}

// compatInsecureCIDRs is the engine's insecure-registry CIDR list.
func compatInsecureCIDRs() []string {
	out, err := exec.Command("docker", "info", "--format", "{{json .RegistryConfig.InsecureRegistryCIDRs}}").Output()
	if err != nil {
		return nil
	}
	var cidrs []string
	_ = json.Unmarshal(out, &cidrs)
	return cidrs
}

// compatNoCredentials checks that the docker CLI configuration file holds
// no credentials for host (a missing file holds none).
func compatNoCredentials(configFile, host string) error {
	data, err := os.ReadFile(configFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var cfg struct {
		Auths map[string]json.RawMessage `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("%s: %w", configFile, err)
	}
	if _, ok := cfg.Auths[host]; ok {
		return fmt.Errorf("%s still holds credentials for %s", configFile, host)
	}
	return nil
}

// compatWithout drops the variables starting with prefix.
func compatWithout(env []string, prefix string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, prefix) })
}

func compatLastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}
