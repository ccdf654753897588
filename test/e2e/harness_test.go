// Package e2e tests atoll as its users run it: real atoll processes on
// loopback, driven over HTTP, with no mocks.
package e2e

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Set by TestMain.
var (
	moduleRoot string // directory holding go.mod
	atollBin   string // the atoll binary built from moduleRoot
	emptyConf  string // an empty config file, so no host config leaks in
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "atoll-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		fmt.Fprintf(os.Stderr, "e2e: cannot find the module root (go env GOMOD: %q, %v)\n", gomod, err)
		return 1
	}
	moduleRoot = filepath.Dir(gomod)
	atollBin = filepath.Join(tmp, "atoll")
	build := exec.Command("go", "build", "-o", atollBin, "./cmd/atoll")
	build.Dir = moduleRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/atoll: %v\n%s", err, out)
		return 1
	}
	emptyConf = filepath.Join(tmp, "empty.yml")
	if err := os.WriteFile(emptyConf, nil, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// Node is one atoll serve process. Its methods are for the test goroutine;
// URL may be called from any goroutine.
type Node struct {
	t       *testing.T
	addr    string
	dataDir string
	log     *syncBuffer // stderr and stdout of every incarnation
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	waitErr error
	args    []string // extra serve flags (startNodeWith)
	env     []string // extra environment, KEY=value (startNodeWith)
	wrap    []string // command atoll runs under (startNodeWith), e.g. nsenter --net=NS --
}

// startNode starts a member on a free loopback port serving dataDir and
// waits until it answers /healthz. The test's cleanup stops it and, if the
// test failed, prints its log.
func startNode(t *testing.T, dataDir string) *Node {
	t.Helper()
	n := &Node{t: t, addr: freeAddr(t), dataDir: dataDir, log: &syncBuffer{}}
	t.Cleanup(func() {
		if n.running() {
			n.Stop()
		}
		if t.Failed() {
			t.Logf("atoll log (%s):\n%s", n.addr, n.log.String())
		}
	})
	n.start()
	return n
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// URL is the registry's base URL, e.g. http://127.0.0.1:40123.
func (n *Node) URL() string { return "http://" + n.addr }

// Addr is the registry's host:port.
func (n *Node) Addr() string { return n.addr }

// serveArgs is the member's serve command line, without the binary.
func (n *Node) serveArgs() []string {
	return append([]string{"serve", "--config", emptyConf, "--addr", n.addr, "--data", n.dataDir}, n.args...)
}

func (n *Node) start() {
	n.t.Helper()
	fmt.Fprintf(n.log, "=== start %s --data %s\n", n.addr, n.dataDir)
	args := n.serveArgs()
	cmd := exec.Command(atollBin, args...)
	if len(n.wrap) > 0 { // the wrapper execs atoll: the process is atoll's
		cmd = exec.Command(n.wrap[0], append(append(n.wrap[1:len(n.wrap):len(n.wrap)], atollBin), args...)...)
	}
	cmd.Env = append(cleanEnv(), n.env...)
	cmd.Stdout, cmd.Stderr = n.log, n.log
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("start atoll: %v", err)
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	go func() { n.waitErr = cmd.Wait(); close(n.exited) }()

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-n.exited:
			n.t.Fatalf("atoll exited before it was healthy: %v\n%s", n.waitErr, n.log.String())
		default:
		}
		if resp, err := client.Get(n.URL() + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			n.Kill()
			n.t.Fatalf("atoll not healthy at %s within 15s\n%s", n.addr, n.log.String())
		}
		time.Sleep(20 * time.Millisecond) // poll interval inside the deadline loop
	}
}

// cleanEnv is the test's environment without the variables atoll reads as
// configuration.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") && !strings.HasPrefix(kv, "ATOLL_") {
			env = append(env, kv)
		}
	}
	return env
}

func (n *Node) running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (n *Node) Kill() {
	n.t.Helper()
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
	fmt.Fprintf(n.log, "=== killed\n")
}

// Stop sends SIGTERM and waits for a clean exit; the test fails if the
// process does not exit within 30s or exits with an error.
func (n *Node) Stop() {
	n.t.Helper()
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		if n.waitErr != nil {
			n.t.Errorf("atoll on SIGTERM exited with %v", n.waitErr)
		}
	case <-time.After(30 * time.Second):
		n.t.Errorf("atoll did not exit within 30s of SIGTERM; killing it")
		n.Kill()
	}
	fmt.Fprintf(n.log, "=== stopped\n")
}

// Restart starts the member again on the same address and data directory,
// stopping it first if it still runs.
func (n *Node) Restart() {
	n.t.Helper()
	if n.running() {
		n.Stop()
	}
	n.start()
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// nodeOptions are startNodeWith's additions to a plain startNode.
type nodeOptions struct {
	addr string   // HTTP listen address; default a free loopback port
	args []string // extra serve flags, e.g. --node-name n1 --join ...
	env  []string // extra environment, KEY=value, added after cleanEnv
	wrap []string // a command that execs atoll, e.g. nsenter --net=NS -- (hosts)
}

// startNodeWith is startNode with a chosen address, extra flags and extra
// environment, which every incarnation (Restart) keeps.
func startNodeWith(t *testing.T, dataDir string, o nodeOptions) *Node {
	t.Helper()
	if o.addr == "" {
		o.addr = freeAddr(t)
	}
	n := &Node{t: t, addr: o.addr, dataDir: dataDir, log: &syncBuffer{}, args: o.args, env: o.env, wrap: o.wrap}
	t.Cleanup(func() {
		if n.running() {
			n.Stop()
		}
		if t.Failed() {
			t.Logf("atoll log (%s):\n%s", n.addr, n.log.String())
		}
	})
	n.start()
	return n
}

// reportSummary prints a result worth seeing in every run (a conformance
// summary, a Docker test's duration): on stdout, and appended to the file
// ATOLL_E2E_SUMMARY names, which `make test` prints after the tests, since
// go test shows a passing package's output only with -v.
func reportSummary(line string) {
	fmt.Println(line)
	if path := os.Getenv("ATOLL_E2E_SUMMARY"); path != "" {
		if f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(f, line)
			_ = f.Close()
		}
	}
}
