package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDockerSwarm deploys deploy/swarm/stack.yml on a one-node swarm that
// it creates: the global service's task must come up, answer on the node's
// :5000 (a host-mode port) and take a `docker push` and `docker pull`. A
// container attached to the stack's overlay network then joins through
// tasks.registry, as a task on a second node would. An engine that refuses
// Swarm, overlay networks or host-mode ports skips the test with the
// engine's words, after the stack file has been validated.
func TestDockerSwarm(t *testing.T) {
	dockerRequireEngine(t)
	start := time.Now()
	t.Cleanup(func() { dockerReport(t, "TestDockerSwarm", start) }) // runs last

	stackFile := filepath.Join(moduleRoot, "deploy", "swarm", "stack.yml")
	dockerValidateStack(t, stackFile)
	if state := dockerCLI(t, "info", "--format", "{{.Swarm.LocalNodeState}}"); state != "inactive" {
		t.Skipf("skipping: this engine is already in a swarm (state %q); the test creates its own swarm and leaves existing ones alone", state)
	}
	dockerRequireFreePorts(t, 5000)
	dockerBuildAtollImage(t)

	// The stack requires logins (htpasswd from a Docker secret); the CLI
	// keeps them in a config of this test's own.
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	sw := &dockerSwarm{t: t, stack: fmt.Sprintf("atolle2e%d", os.Getpid()), file: stackFile}
	t.Cleanup(sw.teardown)
	sw.create()
	sw.deploy()
	task := sw.waitRunning(2 * time.Minute)
	t.Logf("stack deployed, task running, in %s", time.Since(start).Round(100*time.Millisecond))

	// The cluster status is for administrators when auth is on: with no
	// access rules every htpasswd user is one.
	const base = "http://" + swarmUser + ":" + swarmPassword + "@127.0.0.1:5000"
	host := dockerCLI(t, "info", "--format", "{{.Name}}") // {{.Node.Hostname}}: the member's name
	dockerWaitFor(t, 60*time.Second, "the task's member alive at "+base, func() error {
		return dockerMembersAre(base, map[string]string{host: "alive"})
	})
	sw.checkAdvertised(base, host, task)
	sw.noteSecret()

	ref := "localhost:5000/e2e/hello:1"
	t.Cleanup(func() { dockerRemoveImages(ref) })
	dockerBuildHello(t, ref, "hello from "+sw.stack+"\n")
	if out, err := dockerExec(context.Background(), nil, moduleRoot, "docker", "push", ref); err == nil || !strings.Contains(out, "no basic auth credentials") {
		t.Errorf("push without logging in: %v, want a refusal asking for credentials", err)
	}
	sw.login("localhost:5000")
	dockerCLI(t, "push", ref)
	dockerPullFresh(t, ref, []string{ref})

	// Another member on the stack's (attachable) overlay network joins the
	// task through Swarm's DNS, as the task on a new node would.
	extra := sw.stack + "-extra"
	t.Cleanup(func() { dockerQuiet(t, "rm", "--force", "--volumes", extra) })
	dockerCLI(t, "run", "--detach", "--name", extra, "--hostname", extra,
		"--network", sw.stack+"_atoll",
		"--env", "ATOLL_NODE_NAME="+extra,
		"--env", "ATOLL_GOSSIP_ADDR=0.0.0.0:7946",
		"--env", "ATOLL_JOIN=tasks.registry",
		"--env", "ATOLL_CLUSTER_SECRET_FILE=/run/secrets/atoll_cluster_secret",
		"--volume", sw.secretFile+":/run/secrets/atoll_cluster_secret:ro",
		dockerAtollImage)
	dockerWaitFor(t, 60*time.Second, extra+" alive as seen by the task", func() error {
		return dockerMembersAre(base, map[string]string{host: "alive", extra: "alive"})
	})
	t.Logf("%s's view (atoll status):\n%s", extra, dockerCLI(t, "exec", extra, "/usr/local/bin/atoll", "status"))
	dockerPullFresh(t, ref, []string{ref})
}

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

// dockerSwarm is the one-node swarm the test creates and the stack it deploys.
type dockerSwarm struct {
	t           *testing.T
	stack, file string
	secretFile  string // the cluster secret, as given to `docker secret create`
	joined      bool   // this test initialised the swarm
	gwExisted   bool   // docker_gwbridge was there before
}

// refused skips the test: the engine will not run the stack. The stack
// file was validated already.
func (s *dockerSwarm) refused(step string, err error) {
	s.t.Helper()
	s.t.Skipf("skipping: the Docker engine refuses Swarm here; %s failed with the engine's error:\n%v\n(%s was validated with `docker stack config`)",
		step, err, s.file)
}

func (s *dockerSwarm) create() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s.gwExisted = exec.CommandContext(ctx, "docker", "network", "inspect", "docker_gwbridge").Run() == nil
	_, err := dockerExec(ctx, nil, moduleRoot, "docker", "swarm", "init", "--advertise-addr", "127.0.0.1")
	if err != nil {
		_, err2 := dockerExec(ctx, nil, moduleRoot, "docker", "swarm", "init")
		if err2 != nil {
			s.refused("docker swarm init", fmt.Errorf("%v\nand without --advertise-addr: %v", err, err2))
		}
	}
	s.joined = true

	htpasswd, err := exec.Command(atollBin, "htpasswd", swarmUser, swarmPassword).Output()
	if err != nil {
		s.t.Fatalf("atoll htpasswd: %v", err)
	}
	htFile := filepath.Join(s.t.TempDir(), "htpasswd")
	if err := os.WriteFile(htFile, htpasswd, 0o644); err != nil {
		s.t.Fatal(err)
	}
	dockerCLI(s.t, "secret", "create", "atoll_htpasswd", htFile)

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	s.secretFile = filepath.Join(s.t.TempDir(), "atoll_cluster_secret")
	if err := os.WriteFile(s.secretFile, []byte(hex.EncodeToString(secret)), 0o644); err != nil {
		s.t.Fatal(err)
	}
	dockerCLI(s.t, "secret", "create", "atoll_cluster_secret", s.secretFile)
}

// The stack's htpasswd secret holds this user.
const swarmUser, swarmPassword = "swarm", "swarm-e2e-password"

// login runs docker login against host with the stack's user.
func (s *dockerSwarm) login(host string) {
	s.t.Helper()
	cmd := exec.Command("docker", "login", host, "-u", swarmUser, "--password-stdin")
	cmd.Stdin = strings.NewReader(swarmPassword)
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("docker login %s: %v\n%s", host, err, out)
	}
}

func (s *dockerSwarm) deploy() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := dockerExec(ctx, nil, moduleRoot, "docker", "stack", "deploy",
		"--resolve-image", "never", "-c", s.file, s.stack); err != nil {
		s.refused("docker stack deploy", err)
	}
}

// waitRunning waits for the service's task to run and returns its
// container id. A task that fails before atoll runs (network, port,
// mount) means the engine refuses the stack; one whose atoll exits is a
// failure.
func (s *dockerSwarm) waitRunning(timeout time.Duration) string {
	s.t.Helper()
	svc := s.stack + "_registry"
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		out := dockerCLI(s.t, "service", "ps", svc, "--no-trunc", "--format", "{{.DesiredState}}|{{.CurrentState}}|{{.Error}}")
		last = out
		for _, line := range strings.Split(out, "\n") {
			f := strings.SplitN(line, "|", 3)
			if len(f) < 3 {
				continue
			}
			switch desired, current, taskErr := f[0], f[1], f[2]; {
			case desired == "Running" && strings.HasPrefix(current, "Running"):
				id := dockerCLI(s.t, "ps", "--quiet", "--filter", "label=com.docker.swarm.service.name="+svc)
				if id != "" {
					return dockerFirstLine(id)
				}
			case strings.Contains(taskErr, "non-zero exit"):
				s.t.Fatalf("the task's atoll exited: %s\n%s", taskErr, s.serviceLogs())
			case taskErr != "":
				s.refused("starting the stack's task", fmt.Errorf("%s (task state %s)", taskErr, current))
			}
		}
		time.Sleep(500 * time.Millisecond) // poll interval inside the deadline loop
	}
	s.t.Fatalf("the task of %s not running within %s; docker service ps:\n%s", svc, timeout, last)
	return ""
}

// checkAdvertised checks that the member advertises the task's overlay
// address, the one the other members can reach.
func (s *dockerSwarm) checkAdvertised(base, host, task string) {
	s.t.Helper()
	ip := dockerCLI(s.t, "inspect", "--format", fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).IPAddress}}`, s.stack+"_atoll"), task)
	st, err := dockerClusterStatus(base)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, m := range st.Members {
		if m.Name == host {
			if want := ip + ":5000"; m.HTTP != want {
				s.t.Errorf("member %s advertises HTTP %s, want its overlay address %s", host, m.HTTP, want)
			}
			return
		}
	}
	s.t.Errorf("member %s missing from %s", host, dockerDescribeMembers(st))
}

// noteSecret logs whether the member took the cluster secret from the
// Docker secret (ATOLL_CLUSTER_SECRET_FILE).
func (s *dockerSwarm) noteSecret() {
	logs := s.serviceLogs()
	switch {
	case strings.Contains(logs, "secret=true"):
		s.t.Log("the member reads its cluster secret from the Docker secret")
	case strings.Contains(logs, "secret=false"):
		s.t.Log("NOTE: the member started without a cluster secret: this atoll ignores ATOLL_CLUSTER_SECRET_FILE")
	}
}

func (s *dockerSwarm) serviceLogs() string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _ := dockerExec(ctx, nil, moduleRoot, "docker", "service", "logs", "--raw", "--no-task-ids", s.stack+"_registry")
	return out
}

// teardown removes the stack, its volume and the swarm, and
// docker_gwbridge if the swarm brought it.
func (s *dockerSwarm) teardown() {
	if !s.joined {
		return
	}
	start := time.Now()
	if s.t.Failed() {
		s.t.Logf("service logs:\n%s", s.serviceLogs())
	}
	dockerQuiet(s.t, "stack", "rm", s.stack)
	// stack rm returns at once; the task's container goes after it stops.
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		out, err := exec.Command("docker", "ps", "--all", "--quiet", "--filter", "label=com.docker.stack.namespace="+s.stack).Output()
		if err != nil || strings.TrimSpace(string(out)) == "" {
			break
		}
		time.Sleep(500 * time.Millisecond) // poll interval inside the deadline loop
	}
	dockerQuiet(s.t, "volume", "rm", s.stack+"_data")
	dockerQuiet(s.t, "swarm", "leave", "--force")
	if !s.gwExisted {
		dockerQuiet(s.t, "network", "rm", "docker_gwbridge")
	}
	s.t.Logf("stack rm, swarm leave in %s", time.Since(start).Round(100*time.Millisecond))
}
