package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// registrySpec says how to launch one registry implementation.
type registrySpec struct {
	name string
	bin  string
	// args returns the command line for a registry listening on addr and
	// storing under dataDir; dir is its private temp dir (for config files).
	args func(addr, dataDir, dir string) ([]string, error)
}

func atollSpec(bin string) registrySpec {
	return registrySpec{name: nameAtoll, bin: bin, args: func(addr, dataDir, _ string) ([]string, error) {
		return []string{"serve", "--addr", addr, "--data", dataDir}, nil
	}}
}

// distributionConfig is CNCF Distribution's configuration: filesystem
// storage, deletes enabled, errors-only logging. The access log is disabled
// so that distribution does not pay for a log line per request.
const distributionConfig = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
http:
  addr: %q
`

func distributionSpec(bin string) registrySpec {
	return registrySpec{name: nameDistribution, bin: bin, args: func(addr, dataDir, dir string) ([]string, error) {
		path := filepath.Join(dir, "config.yml")
		cfg := fmt.Sprintf(distributionConfig, dataDir, addr)
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		return []string{"serve", path}, nil
	}}
}

// registry is a running registry process.
type registry struct {
	name    string
	base    string // http://127.0.0.1:PORT
	dir     string // temp dir: data/, config, registry.log
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has exited
	waitErr error         // valid after exited is closed
}

func startRegistry(ctx context.Context, spec registrySpec, workdir string, timeout time.Duration) (*registry, error) {
	dir, err := os.MkdirTemp(workdir, "atoll-bench-"+spec.name+"-")
	if err != nil {
		return nil, err
	}
	r := &registry{name: spec.name, dir: dir, logPath: filepath.Join(dir, "registry.log")}
	if err := r.start(ctx, spec, timeout); err != nil {
		r.stop(true, false)
		return nil, fmt.Errorf("%s: start: %w", spec.name, err)
	}
	return r, nil
}

func (r *registry) start(ctx context.Context, spec registrySpec, timeout time.Duration) error {
	dataDir := filepath.Join(r.dir, "data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	r.base = "http://" + addr
	args, err := spec.args(addr, dataDir, r.dir)
	if err != nil {
		return err
	}
	logFile, err := os.Create(r.logPath)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child keeps its own descriptor
	r.cmd = exec.Command(spec.bin, args...)
	r.cmd.Stdout, r.cmd.Stderr = logFile, logFile
	r.cmd.SysProcAttr = childProcAttr()
	if err := r.cmd.Start(); err != nil {
		return err
	}
	r.exited = make(chan struct{})
	go func() {
		r.waitErr = r.cmd.Wait()
		close(r.exited)
	}()
	return r.waitReady(ctx, timeout)
}

// freeAddr picks a free loopback port. The tiny window between closing the
// probe listener and the registry binding the port is acceptable here.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitReady polls GET /v2/ until it answers 200, the process exits, or the
// deadline passes.
func (r *registry) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.base+"/v2/", nil)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = "GET /v2/ returned " + resp.Status
		} else if ctx.Err() == nil {
			last = err.Error()
		}
		select {
		case <-r.exited:
			return fmt.Errorf("process exited before becoming ready: %v", r.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s (last: %s)", timeout, last)
		case <-tick.C:
		}
	}
}

// hasExited reports whether the process is gone.
func (r *registry) hasExited() bool {
	if r.exited == nil {
		return false
	}
	select {
	case <-r.exited:
		return true
	default:
		return false
	}
}

// annotate adds the process state to err when the registry has died.
func (r *registry) annotate(err error) error {
	if r.hasExited() {
		return fmt.Errorf("%w (%s process exited: %v)", err, r.name, r.waitErr)
	}
	return err
}

// stop terminates the process (SIGTERM, then SIGKILL after 10s) and removes
// the temp dir unless keep is set. With failed set, the log tail is printed.
func (r *registry) stop(failed, keep bool) {
	if r.cmd != nil && r.cmd.Process != nil && !r.hasExited() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(10 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
	}
	if failed {
		if tail := r.logTail(4096); tail != "" {
			fmt.Fprintf(os.Stderr, "--- %s log tail (%s) ---\n%s\n--- end of %s log ---\n", r.name, r.logPath, tail, r.name)
		}
	}
	if keep {
		logf("%s: kept %s", r.name, r.dir)
		return
	}
	if err := os.RemoveAll(r.dir); err != nil {
		logf("%s: removing %s: %v", r.name, r.dir, err)
	}
}

func (r *registry) logTail(n int) string {
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return strings.TrimRight(string(b), "\n")
}
