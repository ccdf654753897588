package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a child process (MinIO or atoll) with its output in a log file.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has exited
	waitErr error         // valid after exited is closed
}

// startProc starts bin with args and env added to the harness's own.
func startProc(name, logPath, bin string, args, env []string) (*proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child keeps its own descriptor
	p := &proc{name: name, logPath: logPath, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = childProcAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, bin, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// waitHTTP polls each URL in turn until it answers 200, the process exits
// or timeout passes.
func (p *proc) waitHTTP(ctx context.Context, timeout time.Duration, urls ...string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := "no answer"
	for len(urls) > 0 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, urls[0], nil)
		if resp, err := hc.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				urls = urls[1:]
				continue
			}
			last = "GET " + urls[0] + ": " + resp.Status
		} else if ctx.Err() == nil {
			last = err.Error()
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited while starting: %v", p.name, p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s (last: %s)", p.name, timeout, last)
		case <-tick.C:
		}
	}
	return nil
}

func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// annotate adds the process state to err when the process has died.
func (p *proc) annotate(err error) error {
	if err != nil && p.hasExited() {
		return fmt.Errorf("%w (%s exited: %v)", err, p.name, p.waitErr)
	}
	return err
}

// stop sends SIGTERM, then SIGKILL after 10s, and waits for the exit. With
// failed set, the tail of the log goes to stderr.
func (p *proc) stop(failed bool) {
	if !p.hasExited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	if !failed {
		return
	}
	if b, err := os.ReadFile(p.logPath); err == nil && len(b) > 0 {
		if len(b) > 4096 {
			b = b[len(b)-4096:]
			if i := bytes.IndexByte(b, '\n'); i >= 0 {
				b = b[i+1:]
			}
		}
		fmt.Fprintf(os.Stderr, "--- %s log tail (%s) ---\n%s\n--- end of %s log ---\n",
			p.name, p.logPath, strings.TrimRight(string(b), "\n"), p.name)
	}
}

// statusKiB reads a "Field:   123 kB" line of /proc/<pid>/status (VmRSS,
// VmHWM), in KiB.
func (p *proc) statusKiB(field string) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p.name, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s in /proc/%d/status", p.name, field, p.cmd.Process.Pid)
}

// freeAddrs returns n distinct loopback addresses whose ports were free a
// moment ago.
func freeAddrs(n int) ([]string, error) {
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // held until all are chosen, so they differ
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}
