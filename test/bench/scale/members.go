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
	data string // its --data directory
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
	ms := addMembers(t, net, dir, cfg.atollBin, "s", n, cfg.mbit, cfg.replicas, cfg.routing)
	waitFormed(t, ms)
	return ms
}

// addMembers adds n hosts named prefix1..prefixn to net, each link capped
// at mbit, and starts a member of one cluster on each (data and logs under
// dir), the others joining the first; it does not wait for them.
func addMembers(t *runT, net *hosts.Net, dir, bin, prefix string, n, mbit, replicas int, routing string) []*member {
	var ms []*member
	for i := range n {
		h := net.Add(fmt.Sprintf("%s%d", prefix, i+1))
		h.Limit(mbit)
		ip := h.IP.String()
		args := []string{"--node-name", h.Name, "--gossip-addr", ip + ":7946", "--grpc-addr", ip + ":7947",
			"--advertise-addr", ip, "--replicas", strconv.Itoa(replicas), "--routing", routing}
		if i > 0 {
			args = append(args, "--join", ms[0].host.IP.String()+":7946")
		}
		ms = append(ms, startMember(t, h, dir, bin, args))
	}
	return ms
}

// startMember starts atoll serve on h, its data in dir/<host>, its log in
// dir/<host>.log, with the extra (cluster) arguments; none makes it a
// single node.
func startMember(t *runT, h *hosts.Host, dir, bin string, extra []string) *member {
	ip := h.IP.String()
	data := filepath.Join(dir, h.Name)
	args := append([]string{"serve", "--addr", ip + ":5000", "--data", data}, extra...)
	cmd := exec.Command(h.Wrap()[0], append(append(h.Wrap()[1:], bin), args...)...)
	cmd.Env = append(os.Environ(), "ATOLL_CLUSTER_FAST=true")
	logf, err := os.Create(filepath.Join(dir, h.Name+".log"))
	if err != nil {
		t.Fatalf("%v", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", h.Name, err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })
	return &member{name: h.Name, host: h, data: data, cmd: cmd}
}

// waitFormed waits until every member of ms sees all of them alive (a
// single node: until it answers).
func waitFormed(t *runT, ms []*member) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := formed(ms)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster of %d not formed within 60s: %v", len(ms), err)
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
