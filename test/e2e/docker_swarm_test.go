package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/test/hosts"
)

// TestDockerSwarm runs deploy/swarm/stack.yml, unchanged, the way its
// users do: a real swarm of three Docker engines, each on a host of its
// own (a manager and two workers), the stack's secrets created on the
// manager, `docker stack deploy`. Then:
//
//   - docker login, build and push on the manager's localhost:5000, docker
//     pull on each worker's localhost:5000, the same /v2/_catalog on every
//     host;
//   - a worker's link cut (a dead host to the others): the image still
//     pulls on the other worker, and every blob is back to R=2 copies on
//     the members left;
//   - a fourth host joins the swarm: the global service starts a member
//     there, which joins and serves everything;
//   - a rolling `docker service update` to a new image tag: throughout,
//     every member whose task is running serves the image, and only the
//     member being replaced is ever unreachable.
//
// It skips, saying why, where no Docker engine runs on the machine (one
// builds the image) or the machine refuses network namespaces; under
// CI=true the latter fails.
func TestDockerSwarm(t *testing.T) {
	dockerRequireEngine(t)
	start := time.Now()
	t.Cleanup(func() { dockerReport(t, "TestDockerSwarm", start) }) // runs last
	stackFile := filepath.Join(moduleRoot, "deploy", "swarm", "stack.yml")
	dockerValidateStack(t, stackFile)
	if err := hosts.Supported(); err != nil && !ciRun() {
		t.Skipf("skipping: hosts: %v", err)
	}
	dockerBuildAtollImage(t)

	net := hosts.New(t)
	hs := []*hosts.Host{net.Add("manager"), net.Add("worker1"), net.Add("worker2")}
	s := newSwarmCluster(t, hs, stackFile)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service logs:\n%s", s.serviceLogs())
		}
	})
	mgr, w1, w2 := s.engines[0], s.engines[1], s.engines[2]
	s.createSecrets()
	s.deploy()
	formed := s.waitMembers(3*time.Minute, mgr, w1, w2)
	logMeasure(t, "swarm of 3 engines formed and stack deployed: members alive everywhere in %v (%v after the deploy)",
		time.Since(start).Round(time.Second), formed.Round(100*time.Millisecond))
	if logs := s.serviceLogs(); strings.Count(logs, "secret=true") < 3 || strings.Contains(logs, "secret=false") {
		t.Errorf("not every member took its cluster secret from the Docker secret (ATOLL_CLUSTER_SECRET_FILE):\n%s", logs)
	}

	// Push on the manager, pull on each worker, all through localhost:5000.
	const repo, ref = "e2e/hello", "localhost:5000/e2e/hello:1"
	if out, err := s.docker(mgr, time.Minute, "pull", ref); err == nil || !strings.Contains(out, "no basic auth credentials") {
		t.Errorf("pull without logging in: %v, want a refusal asking for credentials", err)
	}
	s.login(mgr)
	s.buildHello(mgr, ref, "hello from the swarm\n")
	s.must(mgr, "push", ref)
	for _, w := range []*hosts.Engine{w1, w2} {
		s.pullFresh(w, ref)
	}
	pollUntil(t, 30*time.Second, "the same catalog on every host", func() error {
		return dockerSameCatalogAuth(repo, base(mgr), base(w1), base(w2))
	})
	want := map[digest.Digest]bool{}
	ds, err := pullHTTP(base(mgr), repo, "1")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		want[d] = true
	}

	// A worker's link cut: the image still pulls on the other worker, and
	// its blobs are back to two copies on the members left.
	cut := time.Now()
	w2.Host.Cut()
	s.pullFresh(w1, ref)
	pollUntil(t, 60*time.Second, "worker2 dead to the others", func() error {
		st, err := swarmStatus(base(mgr))
		if err != nil {
			return err
		}
		if state := memberState(st, "worker2"); state == "alive" {
			return fmt.Errorf("manager sees worker2 %s", state)
		}
		return nil
	})
	took := pollUntil(t, 2*time.Minute, "every blob on 2 of manager, worker1", func() error {
		return replicated(s.volumeMembers(mgr, w1), want, 2)
	})
	logMeasure(t, "worker2 cut: pulled on worker1; blobs back to 2 copies %v after the cut (%v of polling)", time.Since(cut).Round(100*time.Millisecond), took.Round(100*time.Millisecond))
	w2.Host.Heal()
	s.waitMembers(2*time.Minute, mgr, w1, w2)

	// A fourth host joins the swarm: its member joins and serves everything.
	joined := time.Now()
	w3 := s.addWorker(net.Add("worker3"))
	s.waitMembers(3*time.Minute, mgr, w1, w2, w3)
	s.login(w3)
	s.pullFresh(w3, ref)
	pollUntil(t, 30*time.Second, "the same catalog on every host", func() error {
		return dockerSameCatalogAuth(repo, base(mgr), base(w1), base(w2), base(w3))
	})
	logMeasure(t, "worker3 joined the swarm: its member alive everywhere and serving the image %v after swarm join", time.Since(joined).Round(100*time.Millisecond))

	s.rollingUpdate(repo, "1")
	logMeasure(t, "full swarm test (3 engines, push/pull, cut, join, rolling update): %v", time.Since(start).Round(time.Second))
}

// ciRun says whether the tests run under CI=true, where refusals fail.
func ciRun() bool { return os.Getenv("CI") == "true" }

// buildHello builds a one-file image FROM scratch on engine e (no base
// image is pulled) tagged ref.
func (s *swarmCluster) buildHello(e *hosts.Engine, ref, content string) {
	s.t.Helper()
	dir := s.t.TempDir()
	for name, data := range map[string]string{"hello.txt": content, "Dockerfile": "FROM scratch\nCOPY hello.txt /\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
	s.must(e, "build", "--tag", ref, dir)
}

// pullFresh removes ref from engine e, logs in, and pulls it: every layer
// comes from the registry.
func (s *swarmCluster) pullFresh(e *hosts.Engine, ref string) {
	s.t.Helper()
	_, _ = s.docker(e, time.Minute, "image", "rm", "--force", ref)
	s.login(e)
	out := s.must(e, "pull", ref)
	if !strings.Contains(out, "Pull complete") {
		s.t.Errorf("%s: docker pull %s downloaded no layer:\n%s", e.Host.Name, ref, out)
	}
	s.t.Logf("%s pulled %s from its localhost:5000", e.Host.Name, ref)
}

// dockerSameCatalogAuth is dockerSameCatalog with the stack's login.
func dockerSameCatalogAuth(repo string, bases ...string) error {
	var first string
	for i, b := range bases {
		body, err := swarmGet(b+"/v2/_catalog", nil)
		if err != nil {
			return err
		}
		if !strings.Contains(string(body), `"`+repo+`"`) {
			return fmt.Errorf("%s/v2/_catalog lacks %s: %s", b, repo, body)
		}
		if i == 0 {
			first = string(body)
		} else if string(body) != first {
			return fmt.Errorf("catalogs differ: %s says %s, %s says %s", bases[0], first, b, body)
		}
	}
	return nil
}

// rollingUpdate tags atoll:latest as atoll:next on every engine and runs
// docker service update --image atoll:next (a new tag is a new image to
// Swarm, so every task is replaced), reading repo:tag through every
// member over and over until the update completes. A member may be
// unreachable (its task is being replaced) but never two at once, and a
// member that answers must serve the image whole.
func (s *swarmCluster) rollingUpdate(repo, tag string) {
	s.t.Helper()
	for _, e := range s.engines {
		s.must(e, "tag", dockerAtollImage, "atoll:next")
	}
	start := time.Now()
	svc := s.stack + "_registry"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var bad []string
	rounds, down := 0, map[string]int{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			var unreachable []string
			for _, e := range s.engines {
				_, err := pullHTTP(base(e), repo, tag)
				var se *statusError
				switch {
				case err == nil:
				case errors.As(err, &se) && se.status == http.StatusServiceUnavailable, !errors.As(err, &se):
					unreachable = append(unreachable, e.Host.Name) // being replaced or not ready yet
				default:
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s: %v", e.Host.Name, err))
					mu.Unlock()
				}
			}
			mu.Lock()
			rounds++
			for _, n := range unreachable {
				down[n]++
			}
			if len(unreachable) > 1 {
				bad = append(bad, fmt.Sprintf("%v unreachable at once", unreachable))
			}
			mu.Unlock()
		}
	}()
	// The stack's update_config (one at a time, stop-first, rollback on
	// failure) stands; its 10s delay and 30s monitor are shortened so the
	// test takes a minute or two rather than four.
	s.must(s.manager(), "service", "update", "--detach", "--update-delay", "2s", "--update-monitor", "5s", "--image", "atoll:next", svc)
	pollUntil(s.t, 6*time.Minute, "the rolling update completes", func() error {
		state, err := s.docker(s.manager(), 30*time.Second, "service", "inspect", "--format", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}", svc)
		if err != nil {
			return err
		}
		if state != "completed" {
			return fmt.Errorf("update state %q", state)
		}
		return nil
	})
	s.waitMembers(2*time.Minute, s.engines...)
	cancel()
	wg.Wait()
	images, _ := s.docker(s.manager(), 30*time.Second, "service", "ps", "--filter", "desired-state=running", "--format", "{{.Node}} {{.Image}}", svc)
	if strings.Count(images, "atoll:next") != len(s.engines) {
		s.t.Errorf("after the update, tasks run:\n%s", images)
	}
	for i, b := range bad {
		if i == maxReported {
			s.t.Errorf("... and %d more", len(bad)-maxReported)
			break
		}
		s.t.Errorf("during the rolling update: %s", b)
	}
	logMeasure(s.t, "rolling update of %d members to atoll:next: %v; %d read rounds through every member, rounds each member was being replaced: %v",
		len(s.engines), time.Since(start).Round(time.Second), rounds, down)
}

// The stack's htpasswd secret holds this user.
const swarmUser, swarmPassword = "swarm", "swarm-e2e-password"

// dockerValidateStack checks the stack file with `docker stack config`, or with
// docker-compose where this CLI lacks it.
func dockerValidateStack(t *testing.T, file string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := dockerExec(ctx, nil, moduleRoot, "docker", "stack", "config", "-c", file)
	if err == nil {
		t.Logf("%s: valid (docker stack config)", file)
		return
	}
	if _, lerr := exec.LookPath("docker-compose"); lerr != nil {
		t.Fatalf("validating the stack file: %v", err)
	}
	if _, cerr := dockerExec(ctx, nil, moduleRoot, "docker-compose", "-f", file, "config", "--quiet"); cerr != nil {
		t.Fatalf("validating the stack file: docker stack config: %v; docker-compose: %v", err, cerr)
	}
	t.Logf("%s: valid (docker-compose config; `docker stack config` failed: %v)", file, err)
}
