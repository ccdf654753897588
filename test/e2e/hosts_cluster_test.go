package e2e

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/test/hosts"
)

// A cluster whose members each run on a host of their own (a network
// namespace with its own address, test/hosts), so that links between
// members can be cut, partitioned and capped. Members listen on their
// host's address: HTTP :5000, gossip :7946, gRPC :7947. The test process
// reaches every host from the machine, whatever partition is in place.

// startHostCluster starts one member on each host, named after it, each
// joining the first, and waits until every member sees all of them alive.
func startHostCluster(t *testing.T, hs []*hosts.Host, o clusterOptions) *testCluster {
	t.Helper()
	if o.replicas == 0 {
		o.replicas = 2
	}
	c := &testCluster{t: t, opts: o, dir: t.TempDir()}
	start := time.Now()
	for _, h := range hs {
		var via *clusterMember
		if len(c.members) > 0 {
			via = c.members[0]
		}
		c.addOnHost(h, via)
	}
	took := c.waitFormed()
	t.Logf("cluster of %d on %d hosts formed in %v (all alive everywhere %v after the last start)",
		len(hs), len(hs), time.Since(start).Round(time.Millisecond), took.Round(time.Millisecond))
	return c
}

// addOnHost starts a member on h, joining via (none if nil).
func (c *testCluster) addOnHost(h *hosts.Host, via *clusterMember) *clusterMember {
	c.t.Helper()
	ip := h.IP.String()
	m := &clusterMember{name: h.Name, gossip: ip + ":7946", grpc: ip + ":7947", secret: c.opts.secret}
	args := []string{
		"--node-name", m.name,
		"--gossip-addr", m.gossip,
		"--grpc-addr", m.grpc,
		"--advertise-addr", ip,
		"--replicas", strconv.Itoa(c.opts.replicas),
	}
	if via != nil {
		args = append(args, "--join", via.gossip)
	}
	if c.opts.routing != "" {
		args = append(args, "--routing", c.opts.routing)
	}
	if c.opts.secret != "" {
		args = append(args, "--cluster-secret", c.opts.secret)
	}
	args = append(args, c.opts.args...)
	m.Node = startNodeWith(c.t, filepath.Join(c.dir, m.name), nodeOptions{
		addr: ip + ":5000",
		args: args,
		env:  append([]string{"ATOLL_CLUSTER_FAST=true"}, c.opts.env...),
		wrap: h.Wrap(),
	})
	c.t.Cleanup(func() { // before startNodeWith's: no hand-off to members going away too
		if m.running() {
			m.Kill()
		}
	})
	c.members = append(c.members, m)
	return m
}

// newHosts creates a net of n hosts named m1..mn; it skips the test
// where the machine cannot make them (a failure under CI=true).
func newHosts(t *testing.T, n int) (*hosts.Net, []*hosts.Host) {
	t.Helper()
	net := hosts.New(t)
	hs := make([]*hosts.Host, n)
	for i := range hs {
		hs[i] = net.Add(fmt.Sprintf("m%d", i+1))
	}
	return net, hs
}

// replicated fails unless every blob in want is on at least replicas of
// ms's data directories (blob files the clients were never told about,
// from writes cut off mid-way, may be anywhere).
func replicated(ms []*clusterMember, want map[digest.Digest]bool, replicas int) error {
	p, _, err := placementOf(ms)
	if err != nil {
		return err
	}
	var short []string
	for d := range want {
		if len(p[d]) < replicas {
			short = append(short, fmt.Sprintf("%s on %v", d.Encoded()[:12], p[d]))
		}
	}
	if len(short) > 0 {
		if len(short) > 6 {
			short = append(short[:6], fmt.Sprintf("and %d more", len(short)-6))
		}
		return fmt.Errorf("acknowledged blobs on fewer than %d members: %v", replicas, short)
	}
	return nil
}
