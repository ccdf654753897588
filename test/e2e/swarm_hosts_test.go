package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/node"
	"github.com/atollhq/atoll/test/hosts"
)

// A Docker Swarm of several engines, one per host (test/hosts): the
// manager on the first, workers on the others. The docker CLI on the
// machine drives each engine through its socket, with a DOCKER_CONFIG of
// the test's own (docker login's credentials); each engine reaches its own
// member at localhost:5000 and the machine reaches every member at its
// host's address.

// swarmCluster is the swarm and the stack deployed on it.
type swarmCluster struct {
	t         *testing.T
	engines   []*hosts.Engine // engines[0] is the manager
	image     string          // docker save of atoll:latest
	stack     string
	file      string
	token     string   // the workers' join token
	dockerEnv []string // DOCKER_CONFIG, DOCKER_BUILDKIT
}

// newSwarmCluster starts an engine on each host, loads atoll:latest into
// it and forms a swarm: the first host's engine initialises it, the
// others join as workers.
func newSwarmCluster(t *testing.T, hs []*hosts.Host, stackFile string) *swarmCluster {
	t.Helper()
	s := &swarmCluster{t: t, stack: "atoll", file: stackFile,
		dockerEnv: []string{"DOCKER_CONFIG=" + t.TempDir(), "DOCKER_BUILDKIT=0"}}
	s.image = filepath.Join(t.TempDir(), "atoll.tar")
	if out, err := exec.Command("docker", "save", "--output", s.image, dockerAtollImage).CombinedOutput(); err != nil {
		t.Fatalf("docker save %s: %v: %s", dockerAtollImage, err, out)
	}
	for i, h := range hs {
		if i == 0 {
			s.engines = append(s.engines, s.startEngine(h))
			s.must(s.manager(), "swarm", "init", "--advertise-addr", h.IP.String())
			s.token = s.must(s.manager(), "swarm", "join-token", "--quiet", "worker")
			continue
		}
		s.addWorker(h)
	}
	return s
}

func (s *swarmCluster) manager() *hosts.Engine { return s.engines[0] }

// startEngine starts an engine on h with atoll:latest loaded.
func (s *swarmCluster) startEngine(h *hosts.Host) *hosts.Engine {
	s.t.Helper()
	start := time.Now()
	e := h.StartDocker()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := e.LoadImage(ctx, s.image); err != nil {
		s.t.Fatal(err)
	}
	s.t.Logf("engine on %s (%s) up with %s in %v", h.Name, h.IP, dockerAtollImage, time.Since(start).Round(100*time.Millisecond))
	return e
}

// addWorker starts an engine on h and joins it to the swarm as a worker.
func (s *swarmCluster) addWorker(h *hosts.Host) *hosts.Engine {
	s.t.Helper()
	e := s.startEngine(h)
	s.must(e, "swarm", "join", "--token", s.token, s.manager().Host.IP.String()+":2377")
	s.engines = append(s.engines, e)
	return e
}

// must runs docker on engine e (5 minutes at most) and fails the test on
// error.
func (s *swarmCluster) must(e *hosts.Engine, args ...string) string {
	s.t.Helper()
	out, err := s.docker(e, 5*time.Minute, args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

func (s *swarmCluster) docker(e *hosts.Engine, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return e.DockerEnv(ctx, s.dockerEnv, args...)
}

// createSecrets makes the stack's two external secrets on the manager:
// an htpasswd file with swarmUser, and a random cluster secret.
func (s *swarmCluster) createSecrets() {
	s.t.Helper()
	htpasswd, err := exec.Command(atollBin, "htpasswd", swarmUser, swarmPassword).Output()
	if err != nil {
		s.t.Fatalf("atoll htpasswd: %v", err)
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	dir := s.t.TempDir()
	for name, content := range map[string][]byte{
		"atoll_htpasswd":       htpasswd,
		"atoll_cluster_secret": []byte(hex.EncodeToString(secret)),
	} {
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, content, 0o600); err != nil {
			s.t.Fatal(err)
		}
		s.must(s.manager(), "secret", "create", name, file)
	}
}

// deploy runs docker stack deploy with the stack file, unchanged.
func (s *swarmCluster) deploy() {
	s.t.Helper()
	s.must(s.manager(), "stack", "deploy", "--resolve-image", "never", "-c", s.file, s.stack)
}

// login runs docker login localhost:5000 on engine e.
func (s *swarmCluster) login(e *hosts.Engine) {
	s.t.Helper()
	cmd := exec.Command("docker", "login", "localhost:5000", "-u", swarmUser, "--password-stdin")
	cmd.Env = e.Env(append(os.Environ(), s.dockerEnv...))
	cmd.Stdin = strings.NewReader(swarmPassword)
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("%s: docker login localhost:5000: %v\n%s", e.Host.Name, err, out)
	}
}

// base is the URL the machine reaches e's member at.
func base(e *hosts.Engine) string { return "http://" + e.Host.IP.String() + ":5000" }

// waitMembers waits until the member of every engine in es sees every
// one of them alive, and is ready.
func (s *swarmCluster) waitMembers(timeout time.Duration, es ...*hosts.Engine) time.Duration {
	s.t.Helper()
	return pollUntil(s.t, timeout, fmt.Sprintf("%d members alive everywhere and ready", len(es)), func() error {
		for _, e := range es {
			st, err := swarmStatus(base(e))
			if err != nil {
				return err
			}
			for _, o := range es {
				if state := memberState(st, o.Host.Name); state != "alive" {
					return fmt.Errorf("%s sees %s %q: %s", e.Host.Name, o.Host.Name, state, dockerDescribeMembers(st))
				}
			}
			if _, err := swarmGet(base(e)+"/readyz", nil); err != nil {
				return err
			}
		}
		return nil
	})
}

func memberState(st node.Status, name string) string {
	for _, m := range st.Members {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

var swarmHTTP = &http.Client{Timeout: 10 * time.Second}

// swarmGet GETs url with the stack's login and returns the body of a 200.
func swarmGet(url string, h http.Header) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(swarmUser, swarmPassword)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := swarmHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &statusError{"GET", url, resp.StatusCode, string(bytes.TrimSpace(body))}
	}
	return body, nil
}

func swarmStatus(b string) (node.Status, error) {
	var st node.Status
	body, err := swarmGet(b+"/_atoll/v1/cluster", nil)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("%s/_atoll/v1/cluster: %w", b, err)
	}
	return st, nil
}

// pullHTTP reads repo:tag's manifest and every blob it names through the
// member at b, checking each digest; it returns the blobs' digests.
func pullHTTP(b, repo, tag string) ([]digest.Digest, error) {
	body, err := swarmGet(b+"/v2/"+repo+"/manifests/"+tag, manifestAccept)
	if err != nil {
		return nil, err
	}
	var m struct {
		Config struct {
			Digest digest.Digest `json:"digest"`
		} `json:"config"`
		Layers []struct {
			Digest digest.Digest `json:"digest"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("manifest %s:%s from %s: %w", repo, tag, b, err)
	}
	ds := []digest.Digest{m.Config.Digest}
	for _, l := range m.Layers {
		ds = append(ds, l.Digest)
	}
	for _, d := range ds {
		blob, err := swarmGet(b+"/v2/"+repo+"/blobs/"+d.String(), nil)
		if err != nil {
			return nil, err
		}
		if got := digest.FromBytes(blob); got != d {
			return nil, fmt.Errorf("blob %s from %s has digest %s", d, b, got)
		}
	}
	return ds, nil
}

// volumeMembers returns, for reading blob placement off the disks, a
// member per engine whose data directory is the stack's volume on it.
func (s *swarmCluster) volumeMembers(es ...*hosts.Engine) []*clusterMember {
	var out []*clusterMember
	for _, e := range es {
		dir := filepath.Join(e.Host.Dir(), "docker", "data", "volumes", s.stack+"_data", "_data")
		out = append(out, &clusterMember{name: e.Host.Name, Node: &Node{dataDir: dir}})
	}
	return out
}

// serviceLogs returns the service's logs, for a failing test.
func (s *swarmCluster) serviceLogs() string {
	out, _ := s.docker(s.manager(), 30*time.Second, "service", "logs", "--raw", "--no-task-ids", s.stack+"_registry")
	return out
}
