package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"time"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

// The pull's reference: what the bench's client reads from a bare HTTP
// server in a process of its own, with nothing of a registry in it:
// net/http's ServeContent of the blob's file, whose bytes leave by
// sendfile from the page cache. Neither registry can pull faster than
// that on this machine; the rounds measure it beside theirs.

// bareServeArg makes the bench's own binary the bare server, serving the
// file named by the next argument on the listener it inherits as fd 3.
const bareServeArg = "-bare-serve"

// serveBare runs the bare server; it returns only on failure.
func serveBare(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		return fmt.Errorf("bare server: inherited listener: %w", err)
	}
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, f)
	}))
}

// bareServer is the bare server's process.
type bareServer struct {
	cmd *exec.Cmd
	url string
}

// startBare starts the bare server on a free loopback port, serving path.
func startBare(path string) (*bareServer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	lf, err := ln.(*net.TCPListener).File()
	_ = ln.Close() // the child holds the socket through its copy
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(self, bareServeArg, path)
	cmd.ExtraFiles = []*os.File{lf}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bare server: %w", err)
	}
	benchkit.Logf("bare server: pid %d at %s", cmd.Process.Pid, ln.Addr())
	return &bareServer{cmd: cmd, url: "http://" + ln.Addr().String() + "/blob"}, nil
}

func (s *bareServer) stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

// runPullBound times a full GET of the blob from the bare server, started
// on the first round.
func runPullBound(ctx context.Context, b *bench, _ *registry) (measurement, error) {
	if b.bare == nil {
		s, err := startBare(b.blob.Name())
		if err != nil {
			return measurement{}, err
		}
		b.bare = s
	}
	start := time.Now()
	if err := benchkit.PullDiscard(ctx, b.hc, b.bare.url, b.blob.Size()); err != nil {
		return measurement{}, errors.Join(errors.New("bare server"), err)
	}
	return measurement{value: benchkit.MBps(b.blob.Size(), time.Since(start))}, nil
}
