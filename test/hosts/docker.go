package hosts

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Engine is a Docker engine (dockerd) running on a host: in its network
// namespace and a UTS namespace of its own whose host name is the host's
// name (a Swarm node's hostname), with its own data root, exec root,
// socket, config file and cgroup parent, the vfs storage driver, no
// default bridge and no iptables rules. The docker CLI on the machine
// drives it through its socket (Docker).
type Engine struct {
	Host   *Host
	Sock   string // the engine's unix socket
	dir    string
	cgroup string // --cgroup-parent: every container of this engine
	cmd    *exec.Cmd
	exited chan struct{}
	log    string // dockerd's output
}

// StartDocker starts an engine on the host and waits until it answers.
// The Net's cleanup stops it (containers first, SIGKILL) and removes its
// files. It skips the test (fails under CI=true) if dockerd is missing or
// does not come up.
func (h *Host) StartDocker() *Engine {
	t := h.net.t
	t.Helper()
	if _, err := exec.LookPath("dockerd"); err != nil {
		refuse(t, "starting a Docker engine", err)
	}
	dir := filepath.Join(h.dir, "docker")
	e := &Engine{Host: h, Sock: filepath.Join(dir, "docker.sock"), dir: dir,
		cgroup: fmt.Sprintf("%s-%d-%s", ruleTag, os.Getpid(), h.NS), log: filepath.Join(dir, "dockerd.log")}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("hosts: %v", err)
	}
	conf := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(conf, []byte("{}\n"), 0o644); err != nil {
		t.Fatalf("hosts: %v", err)
	}
	logf, err := os.Create(e.log)
	if err != nil {
		t.Fatalf("hosts: %v", err)
	}
	defer logf.Close()
	e.cmd = exec.Command("nsenter", "--net=/run/netns/"+h.NS, "--",
		"unshare", "--uts", "--",
		"sh", "-c", `hostname "$0" && exec "$@"`, h.Name,
		"dockerd",
		"--config-file", conf,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "run"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"-H", "unix://"+e.Sock,
		"--storage-driver", "vfs",
		"--bridge", "none",
		"--iptables=false",
		"--cgroup-parent", "/"+e.cgroup,
	)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := e.cmd.Start(); err != nil {
		refuse(t, "starting dockerd on "+h.Name, err)
	}
	e.exited = make(chan struct{})
	go func() { _ = e.cmd.Wait(); close(e.exited) }()
	h.engines = append(h.engines, e)

	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := e.Docker(ctx, "version", "--format", "{{.Server.Version}}")
		cancel()
		if err == nil {
			return e
		}
		select {
		case <-e.exited:
			refuse(t, "starting dockerd on "+h.Name, fmt.Errorf("it exited: %s", e.Log()))
		default:
		}
		if time.Now().After(deadline) {
			refuse(t, "starting dockerd on "+h.Name, fmt.Errorf("no answer within 90s: %v\n%s", err, e.Log()))
		}
		time.Sleep(200 * time.Millisecond) // poll interval inside the deadline loop
	}
}

// Env returns base (the machine's environment if nil) with DOCKER_HOST
// set to this engine, for a docker CLI run by hand.
func (e *Engine) Env(base []string) []string {
	if base == nil {
		base = os.Environ()
	}
	var env []string
	for _, kv := range base {
		if !strings.HasPrefix(kv, "DOCKER_HOST=") {
			env = append(env, kv)
		}
	}
	return append(env, "DOCKER_HOST=unix://"+e.Sock)
}

// Docker runs the docker CLI against this engine and returns its combined
// output, trimmed; the error carries the output.
func (e *Engine) Docker(ctx context.Context, args ...string) (string, error) {
	return e.DockerEnv(ctx, nil, args...)
}

// DockerEnv is Docker with extra environment (DOCKER_CONFIG,
// DOCKER_BUILDKIT) and stdin from the KEY=value list env.
func (e *Engine) DockerEnv(ctx context.Context, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(e.Env(nil), env...)
	out, err := cmd.CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("%s: docker %s: %w: %s", e.Host.Name, strings.Join(args, " "), err, s)
	}
	return s, nil
}

// Log returns the last lines of dockerd's output.
func (e *Engine) Log() string {
	b, _ := os.ReadFile(e.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// stop kills the engine's containers, stops dockerd (SIGTERM, SIGKILL
// after 20s) and kills what is left in its cgroup.
func (e *Engine) stop() {
	select {
	case <-e.exited:
	default:
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if ids, err := e.Docker(ctx, "ps", "--quiet"); err == nil && ids != "" {
			_, _ = e.Docker(ctx, append([]string{"kill"}, strings.Fields(ids)...)...)
		}
		cancel()
		_ = e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
			<-e.exited
		}
	}
	killCgroup(e.cgroup)
	killNamespace(e.Host.NS) // containerd and its shims, started by dockerd
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && cgroupBusy(e.cgroup) {
		time.Sleep(50 * time.Millisecond) // poll interval inside the deadline loop
	}
	removeCgroup(e.cgroup)
}

// cgroupBusy says whether a process is still in the engine's cgroup.
func cgroupBusy(parent string) bool {
	b, err := os.ReadFile("/sys/fs/cgroup/pids/" + parent + "/cgroup.procs")
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	procs, _ := filepath.Glob("/sys/fs/cgroup/pids/" + parent + "/*/cgroup.procs")
	for _, p := range procs {
		c, _ := os.ReadFile(p)
		b = append(b, c...)
	}
	return len(strings.TrimSpace(string(b))) > 0
}

// LoadImage loads an image archive (docker save) into the engine.
func (e *Engine) LoadImage(ctx context.Context, archive string) error {
	_, err := e.Docker(ctx, "load", "--input", archive)
	return err
}
