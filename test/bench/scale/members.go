package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/atollhq/atoll/test/hosts"
)

// runT is the hosts.T of this program: cleanups run at the end of each
// cluster (done), or before exiting on a fatal error.
type runT struct{ cleanups []func() }

func (t *runT) Helper()                         {}
func (t *runT) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (t *runT) Cleanup(f func())                { t.cleanups = append(t.cleanups, f) }
func (t *runT) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-scale: "+format+"\n", args...)
	t.done()
	os.Exit(1)
}
func (t *runT) Skipf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-scale: cannot run: "+format+"\n", args...)
	t.done()
	os.Exit(2)
}

// done runs the cleanups, last registered first.
func (t *runT) done() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	t.cleanups = nil
}

// member is one atoll on a host of its own.
type member struct {
	name string
	host *hosts.Host
	cmd  *exec.Cmd
}

func (m *member) base() string { return "http://" + m.host.IP.String() + ":5000" }

// startCluster starts n members, one per host, each host's link capped at
// mbit, joining the first, and waits until each sees all alive.
func startCluster(t *runT, cfg config, n int) []*member {
	net := hosts.New(t)
	dir, err := os.MkdirTemp("", "atoll-bench-scale-")
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var ms []*member
	for i := range n {
		h := net.Add(fmt.Sprintf("s%d", i+1))
		h.Limit(cfg.mbit)
		ip := h.IP.String()
		args := []string{"serve", "--addr", ip + ":5000", "--data", filepath.Join(dir, h.Name),
			"--node-name", h.Name, "--gossip-addr", ip + ":7946", "--grpc-addr", ip + ":7947",
			"--advertise-addr", ip, "--replicas", strconv.Itoa(cfg.replicas), "--routing", cfg.routing}
		if i > 0 {
			args = append(args, "--join", ms[0].host.IP.String()+":7946")
		}
		cmd := exec.Command(h.Wrap()[0], append(append(h.Wrap()[1:], cfg.atollBin), args...)...)
		cmd.Env = append(os.Environ(), "ATOLL_CLUSTER_FAST=true")
		logf, err := os.Create(filepath.Join(dir, h.Name+".log"))
		if err != nil {
			t.Fatalf("%v", err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", h.Name, err)
		}
		m := &member{name: h.Name, host: h, cmd: cmd}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })
		ms = append(ms, m)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := formed(ms)
		if err == nil {
			return ms
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster of %d not formed within 60s: %v", n, err)
		}
		time.Sleep(200 * time.Millisecond) // poll interval inside the deadline loop
	}
}

// formed says why the members do not all see each other alive yet.
func formed(ms []*member) error {
	c := &http.Client{Timeout: 2 * time.Second}
	for _, m := range ms {
		resp, err := c.Get(m.base() + "/_atoll/v1/cluster")
		if err != nil {
			return err
		}
		var s struct {
			Members []struct{ Name, State string } `json:"members"`
		}
		err = json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		if err != nil {
			return err
		}
		alive := 0
		for _, o := range s.Members {
			if o.State == "alive" {
				alive++
			}
		}
		if alive != len(ms) {
			return fmt.Errorf("%s sees %d of %d alive", m.name, alive, len(ms))
		}
	}
	return nil
}

// waitPlaced waits until every blob is on replicas members (by the
// cluster endpoint's blob counts), so pulls start from a settled ring.
func waitPlaced(ctx context.Context, ms []*member, want int64) error {
	c := &http.Client{Timeout: 2 * time.Second}
	for ctx.Err() == nil {
		resp, err := c.Get(ms[0].base() + "/_atoll/v1/cluster")
		if err != nil {
			return err
		}
		var s struct {
			Members []struct{ Blobs int64 } `json:"members"`
		}
		err = json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var total int64
		for _, m := range s.Members {
			total += m.Blobs
		}
		if total == want {
			return nil
		}
		time.Sleep(200 * time.Millisecond) // poll interval inside the deadline loop
	}
	return fmt.Errorf("blob copies not settled at %d: %w", want, ctx.Err())
}
