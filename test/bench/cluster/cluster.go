package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/ring"
)

// member is one atoll serve process.
type member struct {
	name    string
	host    string // 127.0.0.1:PORT (HTTP)
	base    string // http://host
	dir     string // data/ and log
	gossip  string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has exited
	waitErr error         // valid after exited is closed
}

// cluster is a single node (one member, no cluster flags) or members that
// joined the first one.
type cluster struct {
	label    string
	replicas int
	routing  string
	members  []*member
}

// start launches n members one after the other and, for n > 1, waits until
// every member sees every member alive.
func (c *cluster) start(ctx context.Context, cfg config, parent string, n int) error {
	for i := range n {
		m := &member{name: fmt.Sprintf("n%d", i+1)}
		m.dir = filepath.Join(parent, c.label+"-"+m.name)
		c.members = append(c.members, m) // before starting, so stop covers it
		addr, err := freeAddr(false)
		if err != nil {
			return err
		}
		m.host, m.base = addr, "http://"+addr
		args := []string{"serve", "--addr", addr, "--data", filepath.Join(m.dir, "data")}
		var env []string
		if n > 1 {
			grpc, err := freeAddr(false)
			if err != nil {
				return err
			}
			if m.gossip, err = freeAddr(true); err != nil {
				return err
			}
			args = append(args, "--node-name", m.name, "--gossip-addr", m.gossip, "--grpc-addr", grpc,
				"--replicas", strconv.Itoa(c.replicas), "--routing", c.routing)
			if i > 0 {
				args = append(args, "--join", c.members[0].gossip)
			}
			env = []string{"ATOLL_CLUSTER_FAST=true"}
		}
		if err := m.start(ctx, cfg.atollBin, args, env, cfg.startTimeout); err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
	}
	if n > 1 {
		return c.waitFormed(ctx, cfg.startTimeout)
	}
	return nil
}

func (m *member) start(ctx context.Context, bin string, args, env []string, timeout time.Duration) error {
	if err := os.MkdirAll(filepath.Join(m.dir, "data"), 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(m.dir, "log"))
	if err != nil {
		return err
	}
	defer logFile.Close() // the child keeps its own descriptor
	m.cmd = exec.Command(bin, args...)
	m.cmd.Env = append(os.Environ(), env...)
	m.cmd.Stdout, m.cmd.Stderr = logFile, logFile
	m.cmd.SysProcAttr = childProcAttr()
	if err := m.cmd.Start(); err != nil {
		return err
	}
	m.exited = make(chan struct{})
	go func() {
		m.waitErr = m.cmd.Wait()
		close(m.exited)
	}()
	return poll(ctx, timeout, m, func() error {
		_, err := getJSON(ctx, m.base+"/v2/", nil)
		return err
	})
}

// waitFormed polls GET /_atoll/v1/cluster on every member until each lists
// every member alive.
func (c *cluster) waitFormed(ctx context.Context, timeout time.Duration) error {
	return poll(ctx, timeout, nil, func() error {
		for _, m := range c.members {
			var s struct {
				Members []struct{ Name, State string }
			}
			if _, err := getJSON(ctx, m.base+"/_atoll/v1/cluster", &s); err != nil {
				return err
			}
			for _, o := range c.members {
				i := slices.IndexFunc(s.Members, func(x struct{ Name, State string }) bool { return x.Name == o.name })
				if i < 0 || s.Members[i].State != "alive" {
					return fmt.Errorf("%s does not see %s alive", m.name, o.name)
				}
			}
		}
		return nil
	})
}

// poll calls check every 50ms until it succeeds, m (if set) exits, or the
// timeout passes.
func poll(ctx context.Context, timeout time.Duration, m *member, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var exited <-chan struct{}
	if m != nil {
		exited = m.exited
	}
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("process exited: %v", m.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s (last: %v)", timeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// getJSON GETs u with a short timeout, fails unless 200, and decodes the
// body into v unless v is nil.
func getJSON(ctx context.Context, u string, v any) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if v != nil {
		return resp, json.NewDecoder(resp.Body).Decode(v)
	}
	return resp, nil
}

// predict returns the members the ring (default config, as the members
// run it) places dgst on. It only chooses which member a push goes
// through; placement() on the data dirs is what the scenarios trust.
func (c *cluster) predict(dgst string) []string {
	names := make([]string, len(c.members))
	for i, m := range c.members {
		names[i] = m.name
	}
	return ring.New(ring.Config{}, names).Owners(digest.Digest(dgst), c.replicas)
}

func (c *cluster) byName(name string) *member {
	for _, m := range c.members {
		if m.name == name {
			return m
		}
	}
	return nil
}

// placement splits the members into those whose data dir holds
// blobs/sha256/<xx>/<hex> and the others, failing unless exactly
// replicas members hold it.
func (c *cluster) placement(dgst string) (holders, others []*member, err error) {
	hex := strings.TrimPrefix(dgst, "sha256:")
	for _, m := range c.members {
		_, err := os.Stat(filepath.Join(m.dir, "data", "blobs", "sha256", hex[:2], hex))
		switch {
		case err == nil:
			holders = append(holders, m)
		case errors.Is(err, os.ErrNotExist):
			others = append(others, m)
		default:
			return nil, nil, err
		}
	}
	if len(holders) != c.replicas {
		return nil, nil, fmt.Errorf("%s: blob %s is on %d member(s), want %d", c.label, dgst, len(holders), c.replicas)
	}
	return holders, others, nil
}

// stop SIGKILLs every member (their data is thrown away; a SIGTERM would
// make members hand blobs to each other while all stop) and, when failed,
// prints the end of each member's log.
func (c *cluster) stop(failed bool) {
	for _, m := range c.members {
		if m.exited == nil {
			continue
		}
		_ = m.cmd.Process.Kill()
		<-m.exited
		if !failed {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(m.dir, "log"))
		if len(b) > 3000 {
			b = b[len(b)-3000:]
			if i := bytes.IndexByte(b, '\n'); i >= 0 {
				b = b[i+1:]
			}
		}
		fmt.Fprintf(os.Stderr, "--- %s/%s log tail ---\n%s\n", c.label, m.name, bytes.TrimRight(b, "\n"))
	}
}

// freeAddr picks a free loopback port, free for UDP too when udp is set
// (gossip uses both). The window before the member binds it is accepted.
func freeAddr(udp bool) (string, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		ok := true
		if udp {
			pc, err := net.ListenPacket("udp", addr)
			ok = err == nil
			if ok {
				pc.Close()
			}
		}
		l.Close()
		if ok {
			return addr, nil
		}
	}
	return "", errors.New("no free TCP+UDP loopback port")
}
