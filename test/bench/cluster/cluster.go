package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/ring"
	"github.com/atollhq/atoll/test/bench/benchkit"
)

// member is one atoll serve process.
type member struct {
	name   string
	host   string // 127.0.0.1:PORT (HTTP)
	base   string // http://host
	dir    string // data/ and log
	gossip string
	proc   *benchkit.Proc
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
		addr, err := benchkit.FreeAddr()
		if err != nil {
			return err
		}
		m.host, m.base = addr, "http://"+addr
		args := []string{"serve", "--addr", addr, "--data", filepath.Join(m.dir, "data")}
		var env []string
		if n > 1 {
			grpc, err := benchkit.FreeAddr()
			if err != nil {
				return err
			}
			if m.gossip, err = benchkit.FreeAddrUDP(); err != nil {
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
	var err error
	if m.proc, err = benchkit.Start(m.name, filepath.Join(m.dir, "log"), bin, args, env); err != nil {
		return err
	}
	return m.proc.WaitHTTP(ctx, timeout, m.base+"/v2/")
}

// waitFormed polls GET /_atoll/v1/cluster on every member until each lists
// every member alive.
func (c *cluster) waitFormed(ctx context.Context, timeout time.Duration) error {
	return benchkit.Poll(ctx, timeout, nil, func(ctx context.Context) error {
		for _, m := range c.members {
			var s struct {
				Members []struct{ Name, State string }
			}
			if err := getJSON(ctx, m.base+"/_atoll/v1/cluster", &s); err != nil {
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

// getJSON GETs u with a short timeout, fails unless 200, and decodes the
// body into v.
func getJSON(ctx context.Context, u string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := benchkit.Get(ctx, http.DefaultClient, u, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
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
		if m.proc == nil {
			continue
		}
		m.proc.Kill()
		if failed {
			fmt.Fprintf(os.Stderr, "--- %s/%s log tail ---\n%s\n", c.label, m.name, m.proc.LogTail(3000))
		}
	}
}
