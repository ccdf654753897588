package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestDockerCompose runs deploy/compose/docker-compose.yml as a user would:
// three members in containers on a private network, each with its own
// volume, published on :5000-:5002. It pushes with `docker push` to one
// member, pulls with `docker pull` from another, compares catalogs, stops a
// member and pulls again, adds a fourth member live, and runs the OCI
// conformance suite against node1.
func TestDockerCompose(t *testing.T) {
	dockerRequireEngine(t)
	start := time.Now()
	t.Cleanup(func() { dockerReport(t, "TestDockerCompose", start) }) // runs last

	cp := newDockerCompose(t)
	dockerRequireFreePorts(t, 5000, 5001, 5002, 5003)
	dockerBuildAtollImage(t)

	const (
		node1 = "http://127.0.0.1:5000"
		node2 = "http://127.0.0.1:5001"
		node3 = "http://127.0.0.1:5002"
		node4 = "http://127.0.0.1:5003"
	)
	refs := []string{"localhost:5000/e2e/hello:1", "localhost:5002/e2e/hello:1", "localhost:5003/e2e/hello:1"}
	t.Cleanup(func() { dockerRemoveImages(refs...) })
	t.Cleanup(cp.down) // registered before up, so a failed up is cleaned too

	cp.run("up", "-d")
	all3 := map[string]string{"node1": "alive", "node2": "alive", "node3": "alive"}
	for _, base := range []string{node1, node2, node3} {
		dockerWaitFor(t, 90*time.Second, "three members alive as seen by "+base, func() error { return dockerMembersAre(base, all3) })
	}
	t.Logf("cluster of three up in %s", time.Since(start).Round(100*time.Millisecond))

	dockerBuildHello(t, refs[0], "hello from "+cp.project+"\n")
	dockerCLI(t, "push", refs[0])
	dockerRemoveImages(refs[0])
	dockerPullFresh(t, refs[1], refs) // pushed to node1, pulled from node3
	dockerWaitFor(t, 30*time.Second, "the same /v2/_catalog on every member", func() error {
		return dockerSameCatalog("e2e/hello", node1, node2, node3)
	})

	// A member stops (SIGTERM: it hands its blobs off and leaves); the
	// others still serve everything.
	cp.run("stop", "node2")
	dockerWaitFor(t, 60*time.Second, "node2 seen leaving", func() error {
		return dockerMembersAre(node1, map[string]string{"node1": "alive", "node2": "left", "node3": "alive"})
	})
	dockerPullFresh(t, refs[0], refs) // node1
	dockerPullFresh(t, refs[1], refs) // node3 (:5001 was node2's)

	// A fourth member joins the running cluster.
	cp.run("--profile", "scale", "up", "-d", "node4")
	for _, base := range []string{node1, node4} {
		dockerWaitFor(t, 90*time.Second, "node4 alive as seen by "+base, func() error {
			return dockerMembersAre(base, map[string]string{"node1": "alive", "node3": "alive", "node4": "alive"})
		})
	}
	dockerWaitFor(t, 30*time.Second, "node4's catalog", func() error { return dockerSameCatalog("e2e/hello", node1, node4) })
	dockerPullFresh(t, refs[2], refs)

	// The image's HEALTHCHECK (atoll healthcheck: a scratch image has no curl).
	id := dockerFirstLine(cp.run("ps", "-q", "node1"))
	dockerWaitFor(t, 60*time.Second, "node1's container healthy", func() error {
		if h := dockerCLI(t, "inspect", "--format", "{{.State.Health.Status}}", id); h != "healthy" {
			return fmt.Errorf("health status %q", h)
		}
		return nil
	})

	runConformance(t, conformanceBinary(t), "127.0.0.1:5000", "compose cluster")
	if t.Failed() {
		return
	}
	cp.down()
}

// dockerReport prints how long a Docker test took, cleanup included, pass
// or fail.
func dockerReport(t *testing.T, name string, start time.Time) {
	verdict := "passed"
	switch {
	case t.Failed():
		verdict = "failed"
	case t.Skipped():
		verdict = "skipped"
	}
	msg := fmt.Sprintf("%s %s in %s", name, verdict, time.Since(start).Round(100*time.Millisecond))
	t.Log(msg)
	reportSummary(msg)
}

// dockerCompose drives one project of deploy/compose/docker-compose.yml under a
// project name of its own, with `docker compose` or, failing that,
// `docker-compose`.
type dockerCompose struct {
	t       *testing.T
	cmd     []string // "docker", "compose" or "docker-compose"
	file    string
	project string
	env     []string
	downed  bool
}

// newDockerCompose finds a compose tool or skips the test, saying why.
func newDockerCompose(t *testing.T) *dockerCompose {
	t.Helper()
	var cmd []string
	if exec.Command("docker", "compose", "version").Run() == nil {
		cmd = []string{"docker", "compose"}
	} else if _, err := exec.LookPath("docker-compose"); err == nil {
		cmd = []string{"docker-compose"}
	} else {
		missingTool(t, "neither `docker compose` nor `docker-compose` is installed", "the Docker compose plugin (docker-compose-plugin or docker-compose)")
	}
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	return &dockerCompose{
		t:       t,
		cmd:     cmd,
		file:    filepath.Join(moduleRoot, "deploy", "compose", "docker-compose.yml"),
		project: fmt.Sprintf("atolle2e%d", os.Getpid()),
		// The members' cluster secret: a fresh one, through the
		// variable the compose file reads.
		env: append(withoutPrefix(cleanEnv(), "COMPOSE_"), "ATOLL_CLUSTER_SECRET="+hex.EncodeToString(secret)),
	}
}

func (c *dockerCompose) args(args ...string) []string {
	return slices.Concat(c.cmd[1:], []string{"-f", c.file, "-p", c.project}, args)
}

// run runs a compose command and fails the test on error (down then
// prints the members' logs).
func (c *dockerCompose) run(args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := dockerExec(ctx, c.env, filepath.Dir(c.file), c.cmd[0], c.args(args...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// down prints the members' logs if the test failed, then removes the
// project's containers, network and volumes. It runs once.
func (c *dockerCompose) down() {
	if c.downed {
		return
	}
	c.downed = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if c.t.Failed() {
		logs, _ := dockerExec(ctx, c.env, filepath.Dir(c.file), c.cmd[0], c.args("--profile", "scale", "logs", "--no-color", "--tail", "200")...)
		c.t.Logf("compose logs:\n%s", logs)
	}
	start := time.Now()
	_, err := dockerExec(ctx, c.env, filepath.Dir(c.file), c.cmd[0],
		c.args("--profile", "scale", "down", "--volumes", "--remove-orphans", "--timeout", "30")...)
	if err != nil {
		c.t.Errorf("compose down: %v", err)
		return
	}
	c.t.Logf("compose down -v in %s", time.Since(start).Round(100*time.Millisecond))
}
