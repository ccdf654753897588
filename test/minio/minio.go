// Package minio runs a real MinIO server on loopback for tests:
//
//	srv := minio.Start(t) // skips (or, under CI=true, fails) without the binary
//	cfg := s3.Config{RegionEndpoint: "http://" + srv.Endpoint(), AccessKey: srv.AccessKey, ...}
//
// The server keeps its data in a temporary directory and is stopped when the
// test ends. Stop and Restart simulate an outage: the data directory and the
// port stay the same.
package minio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Install is how to get the binary the fixture looks for.
const Install = "go install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

// startTimeout bounds how long a starting server may take to answer its
// liveness probe.
const startTimeout = 60 * time.Second

// Server is one MinIO process. Its methods are called from the test's
// goroutine.
type Server struct {
	AccessKey string
	SecretKey string

	t       testing.TB
	bin     string
	dir     string
	addr    string // S3 API, host:port
	console string // web console, host:port
	out     *output
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has exited
}

// Start starts a server and stops it when t ends. Without a minio binary on
// $PATH or in $(go env GOPATH)/bin it skips t, or fails it when CI=true.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := find()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("minio binary not found (%v); CI must install it: %s", err, Install)
		}
		t.Skipf("minio binary not found (%v); install it to run this test: %s", err, Install)
	}
	s := &Server{
		AccessKey: "atoll-test",
		SecretKey: "atoll-test-secret",
		t:         t,
		bin:       bin,
		dir:       t.TempDir(),
		out:       &output{},
	}
	addrs := freeAddrs(t, 2)
	s.addr, s.console = addrs[0], addrs[1]
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("minio output:\n%s", s.out.String())
		}
	})
	s.start()
	return s
}

// Endpoint is the S3 API address, host:port (plain HTTP).
func (s *Server) Endpoint() string { return s.addr }

// Stop stops the server and waits for it to exit. Stopping a stopped server
// does nothing.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// Restart stops the server if it runs and starts it again on the same data
// directory and port.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

func (s *Server) start() {
	s.t.Helper()
	cmd := exec.Command(s.bin, "server", s.dir, "--address", s.addr, "--console-address", s.console, "--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_UPDATE=off",
		"MINIO_BROWSER=off",
	)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start minio: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	if err := s.waitLive(); err != nil {
		s.Stop()
		s.t.Fatalf("minio on %s: %v\noutput:\n%s", s.addr, err, s.out.String())
	}
}

// waitLive polls the liveness endpoint, then the cluster one, until both
// answer 200, the process exits, or startTimeout passes. MinIO is live, and
// its readiness probe answers 200, before its object layer is initialized;
// S3 requests then fail with "Server not initialized yet". The cluster probe
// answers 503 until the object layer has write quorum.
func (s *Server) waitLive() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	probes := []string{"/minio/health/live", "/minio/health/cluster"}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+probes[0], nil)
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if probes = probes[1:]; len(probes) == 0 {
					return nil
				}
				continue
			}
		}
		select {
		case <-s.exited:
			return errors.New("exited while starting")
		case <-ctx.Done():
			return fmt.Errorf("not live after %v", startTimeout)
		case <-tick.C:
		}
	}
}

// find looks for the binary on $PATH, then in $(go env GOPATH)/bin.
func find() (string, error) {
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	gopath := build.Default.GOPATH
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		gopath = strings.TrimSpace(string(out))
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "minio")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("not on $PATH nor in %s", filepath.Join(gopath, "bin"))
}

// freeAddrs returns n distinct loopback addresses whose ports were free a
// moment ago.
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		defer l.Close() // held until all are chosen, so they differ
		addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	return addrs
}

// output collects what the server prints, for failure messages.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
