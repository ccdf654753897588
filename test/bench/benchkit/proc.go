package benchkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Proc is a child process (a registry, MinIO, a cluster member) whose
// output goes to a log file.
type Proc struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has exited
	waitErr error         // valid after exited is closed
}

// Start runs bin with args and env added to the harness's own environment,
// stdout and stderr going to a new file at logPath. The child gets its own
// process group and, on Linux, dies with the harness (see childProcAttr).
func Start(name, logPath, bin string, args, env []string) (*Proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child keeps its own descriptor
	p := &Proc{Name: name, LogPath: logPath, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = childProcAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// HasExited reports whether the process is gone.
func (p *Proc) HasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Annotate adds the process state to a non-nil err when the process has
// died.
func (p *Proc) Annotate(err error) error {
	if err != nil && p.HasExited() {
		return fmt.Errorf("%w (%s exited: %v)", err, p.Name, p.waitErr)
	}
	return err
}

// Poll calls check every 50ms until it succeeds, p (unless nil) exits, or
// timeout passes; the error then names the last failure of check.
func Poll(ctx context.Context, timeout time.Duration, p *Proc, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var exited <-chan struct{}
	if p != nil {
		exited = p.exited
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := errors.New("no answer")
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() == nil {
			last = err
		}
		select {
		case <-exited:
			return fmt.Errorf("process exited while starting: %v", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s (last: %v)", timeout, last)
		case <-tick.C:
		}
	}
}

// WaitHTTP polls each URL in turn until it answers 200, the process exits
// or timeout passes.
func (p *Proc) WaitHTTP(ctx context.Context, timeout time.Duration, urls ...string) error {
	hc := &http.Client{Timeout: time.Second}
	return Poll(ctx, timeout, p, func(ctx context.Context) error {
		for len(urls) > 0 {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, urls[0], nil)
			if err != nil {
				return err
			}
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %s", urls[0], resp.Status)
			}
			urls = urls[1:]
		}
		return nil
	})
}

// Stop sends SIGTERM, then SIGKILL after 10s, and waits for the exit. With
// failed set, the tail of the log goes to stderr.
func (p *Proc) Stop(failed bool) {
	if !p.HasExited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.Kill()
		}
	}
	if !failed {
		return
	}
	if tail := p.LogTail(4096); tail != "" {
		fmt.Fprintf(os.Stderr, "--- %s log tail (%s) ---\n%s\n--- end of %s log ---\n", p.Name, p.LogPath, tail, p.Name)
	}
}

// Kill sends SIGKILL and waits for the exit.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// LogTail returns about the last n bytes of the log, from a line start,
// without trailing newlines ("" if it cannot be read).
func (p *Proc) LogTail(n int) string {
	b, err := os.ReadFile(p.LogPath)
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

// FreeAddr picks a free loopback TCP address. The window before the child
// binds it is accepted.
func FreeAddr() (string, error) {
	addrs, err := FreeAddrs(1)
	if err != nil {
		return "", err
	}
	return addrs[0], nil
}

// FreeAddrs returns n distinct loopback addresses whose TCP ports were free
// a moment ago.
func FreeAddrs(n int) ([]string, error) {
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

// FreeAddrUDP picks a loopback port free for both TCP and UDP (gossip uses
// both).
func FreeAddrUDP() (string, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		if err == nil {
			pc.Close()
		}
		l.Close()
		if err == nil {
			return addr, nil
		}
	}
	return "", errors.New("no free TCP+UDP loopback port")
}
