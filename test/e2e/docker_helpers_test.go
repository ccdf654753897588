package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atollhq/atoll/node"
)

// The image the Docker tests build (deploy/build-image.sh) and run.
const dockerAtollImage = "atoll:latest"

// dockerRequireEngine skips the test, saying why, unless a Docker engine answers
// `docker info`. Under CI=true it fails instead (missingTool): the machines CI
// runs on have an engine, and .ci/run starts it, so a missing one is a broken
// CI that would otherwise pass with every Docker test skipped.
func dockerRequireEngine(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		missingTool(t, fmt.Sprintf("no docker CLI in $PATH (%v)", err), "the Docker engine and CLI (docker.io or docker-ce)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		missingTool(t, fmt.Sprintf("`docker info` failed, so no Docker engine is reachable: %v: %s", err, strings.TrimSpace(string(out))),
			"start the Docker engine (systemctl start docker)")
	}
}

// dockerExec runs a command with a deadline and returns its combined output,
// trimmed. The error names the command and carries the output, so an
// engine's refusal reaches the test log word for word.
func dockerExec(ctx context.Context, env []string, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, s)
	}
	return s, nil
}

// dockerCLI runs `docker args...` with a 5 minute limit and fails the test on
// error.
func dockerCLI(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := dockerExec(ctx, nil, moduleRoot, "docker", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dockerQuiet runs `docker args...` for cleanup: errors are only logged.
func dockerQuiet(t *testing.T, args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := dockerExec(ctx, nil, moduleRoot, "docker", args...); err != nil {
		t.Logf("cleanup: %v", err)
	} else if out != "" && testing.Verbose() {
		t.Logf("cleanup: docker %s: %s", strings.Join(args, " "), dockerFirstLine(out))
	}
}

func dockerFirstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

var (
	dockerImageOnce sync.Once
	dockerImageErr  error
	dockerImageTook time.Duration
)

// dockerBuildAtollImage builds atoll:latest once per test binary with the script
// `make image` runs.
func dockerBuildAtollImage(t *testing.T) {
	t.Helper()
	first := false
	dockerImageOnce.Do(func() {
		first = true
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		env := append(os.Environ(), "VERSION=e2e")
		_, dockerImageErr = dockerExec(ctx, env, moduleRoot, "bash", filepath.Join(moduleRoot, "deploy", "build-image.sh"))
		dockerImageTook = time.Since(start).Round(100 * time.Millisecond)
	})
	if dockerImageErr != nil {
		t.Fatalf("building %s: %v", dockerAtollImage, dockerImageErr)
	}
	if first {
		t.Logf("image %s built in %s (deploy/build-image.sh)", dockerAtollImage, dockerImageTook)
	} else {
		t.Logf("image %s built earlier in this run", dockerAtollImage)
	}
}

// dockerBuildEnv makes `docker build` use the classic builder where the
// buildx plugin (BuildKit) is missing, as deploy/build-image.sh does.
func dockerBuildEnv() []string {
	env := os.Environ()
	if os.Getenv("DOCKER_BUILDKIT") == "" && exec.Command("docker", "buildx", "version").Run() != nil {
		env = append(env, "DOCKER_BUILDKIT=0")
	}
	return env
}

// dockerBuildHello builds a one-file image FROM scratch tagged ref; no base
// image is pulled.
func dockerBuildHello(t *testing.T, ref, content string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY hello.txt /\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := dockerExec(ctx, dockerBuildEnv(), dir, "docker", "build", "-t", ref, "."); err != nil {
		t.Fatalf("building the test image: %v", err)
	}
}

// dockerRequireFreePorts fails the test, naming the ports, unless every port can
// be bound on all interfaces (as Docker publishes them).
func dockerRequireFreePorts(t *testing.T, ports ...int) {
	t.Helper()
	var busy []string
	for _, p := range ports {
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			busy = append(busy, fmt.Sprintf("%d (%v)", p, err))
			continue
		}
		ln.Close()
	}
	if len(busy) > 0 {
		t.Fatalf("host ports %v must be free for this test (the deploy files publish them); busy: %s",
			ports, strings.Join(busy, "; "))
	}
}

// dockerWaitFor polls check every 250ms until it returns nil or timeout passes,
// then fails the test with what and check's last error.
func dockerWaitFor(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond) // poll interval inside the deadline loop
	}
}

var dockerHTTP = &http.Client{Timeout: 5 * time.Second}

// dockerGet GETs url and returns the body of a 200 answer.
func dockerGet(url string) ([]byte, error) {
	resp, err := dockerHTTP.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

// dockerClusterStatus is GET /_atoll/v1/cluster of the member at base.
func dockerClusterStatus(base string) (node.Status, error) {
	var s node.Status
	body, err := dockerGet(base + "/_atoll/v1/cluster")
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return s, fmt.Errorf("cluster status from %s: %w", base, err)
	}
	return s, nil
}

// dockerMembersAre checks that the member at base sees exactly the members of
// want in the given states (name → state) among the members it reports;
// members not named in want may be in any state.
func dockerMembersAre(base string, want map[string]string) error {
	s, err := dockerClusterStatus(base)
	if err != nil {
		return err
	}
	got := map[string]string{}
	for _, m := range s.Members {
		got[m.Name] = m.State
	}
	for name, state := range want {
		if got[name] != state {
			return fmt.Errorf("%s (member %s) sees %s, want %s %s", base, s.Node, dockerDescribeMembers(s), name, state)
		}
	}
	return nil
}

func dockerDescribeMembers(s node.Status) string {
	var parts []string
	for _, m := range s.Members {
		parts = append(parts, m.Name+"="+m.State)
	}
	slices.Sort(parts)
	return "[" + strings.Join(parts, " ") + "]"
}

// dockerSameCatalog checks that every base answers GET /v2/_catalog with the
// same body and that it lists repo.
func dockerSameCatalog(repo string, bases ...string) error {
	var first []byte
	for i, b := range bases {
		body, err := dockerGet(b + "/v2/_catalog")
		if err != nil {
			return err
		}
		var cat struct {
			Repositories []string `json:"repositories"`
		}
		if err := json.Unmarshal(body, &cat); err != nil {
			return fmt.Errorf("%s/v2/_catalog: %w: %s", b, err, body)
		}
		if !slices.Contains(cat.Repositories, repo) {
			return fmt.Errorf("%s/v2/_catalog lacks %s: %s", b, repo, bytes.TrimSpace(body))
		}
		if i == 0 {
			first = body
		} else if !bytes.Equal(body, first) {
			return fmt.Errorf("catalogs differ: %s says %s, %s says %s",
				bases[0], bytes.TrimSpace(first), b, bytes.TrimSpace(body))
		}
	}
	return nil
}

// dockerRemoveImages removes local image references, ignoring those absent.
func dockerRemoveImages(refs ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = dockerExec(ctx, nil, moduleRoot, "docker", append([]string{"image", "rm", "--force"}, refs...)...)
}

// dockerPullFresh removes every local reference in all (the image and any
// other name of it), then pulls ref, so that every byte comes from the
// registry: Docker skips a pull whose image it already holds.
func dockerPullFresh(t *testing.T, ref string, all []string) {
	t.Helper()
	dockerRemoveImages(all...)
	out := dockerCLI(t, "pull", ref)
	if !strings.Contains(out, "Pull complete") {
		t.Errorf("docker pull %s downloaded no layer:\n%s", ref, out)
	}
	t.Logf("pulled %s", ref)
}

// skippedLines returns the conformance report's lines for skipped
// checks, each with the reason line the suite prints under it.
func skippedLines(stdout string) string {
	var out strings.Builder
	lines := strings.Split(stdout, "\n")
	for i, line := range lines {
		if strings.HasSuffix(strings.TrimSpace(line), ": Skip") {
			out.WriteString(line + "\n")
			if i+1 < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i+1]), "- ") {
				out.WriteString(lines[i+1] + "\n")
			}
		}
	}
	return out.String()
}
