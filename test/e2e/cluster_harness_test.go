package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/node"
	"github.com/atollhq/atoll/ring"
)

// A cluster of atoll members on loopback: each member is its own atoll
// serve process with real gossip (memberlist, TCP and UDP) and real gRPC,
// started with ATOLL_CLUSTER_FAST=true so a dead member is noticed within
// seconds. Tests synchronise only by polling with deadlines (pollUntil).

// clusterOptions are the serve flags every member of a cluster shares.
type clusterOptions struct {
	replicas int      // --replicas; default 2
	routing  string   // --routing; default the server's (proxy)
	secret   string   // --cluster-secret; default none
	env      []string // extra environment of every member
	args     []string // extra serve flags of every member, e.g. --config
	dir      string   // holds the members' data directories; default a new one
}

// clusterMember is one cluster member. Its methods are for the test goroutine.
type clusterMember struct {
	*Node
	name   string
	gossip string // gossip host:port (TCP and UDP)
	grpc   string // gRPC host:port
	killed bool   // SIGKILLed by the test
	frozen bool   // SIGSTOPped by the test
	secret string // --cluster-secret: status sends its token (with auth on, status wants it)
}

// testCluster is the members a test started, in start order.
type testCluster struct {
	t       *testing.T
	opts    clusterOptions
	dir     string
	members []*clusterMember
}

// startLoopbackCluster starts n members, each joining the first, and waits until
// every member sees all of them alive.
func startLoopbackCluster(t *testing.T, n int, o clusterOptions) *testCluster {
	t.Helper()
	if o.replicas == 0 {
		o.replicas = 2
	}
	c := &testCluster{t: t, opts: o, dir: o.dir}
	if c.dir == "" {
		c.dir = t.TempDir()
	}
	start := time.Now()
	for range n {
		var via *clusterMember
		if len(c.members) > 0 {
			via = c.members[0]
		}
		c.add(via, o.secret)
	}
	took := c.waitFormed()
	t.Logf("cluster of %d formed in %v (all alive everywhere %v after the last start)",
		n, time.Since(start).Round(time.Millisecond), took.Round(time.Millisecond))
	return c
}

// add starts the next member, joining via (none if nil), with the given
// cluster secret. It returns once the member answers /healthz; it may not
// have joined yet.
func (c *testCluster) add(via *clusterMember, secret string) *clusterMember {
	c.t.Helper()
	name := fmt.Sprintf("n%d", len(c.members)+1)
	m := &clusterMember{name: name, gossip: freeGossipAddr(c.t), grpc: freeLoopbackAddr(c.t), secret: secret}
	args := []string{
		"--node-name", name,
		"--gossip-addr", m.gossip,
		"--grpc-addr", m.grpc,
		"--replicas", strconv.Itoa(c.opts.replicas),
	}
	if via != nil {
		args = append(args, "--join", via.gossip)
	}
	if c.opts.routing != "" {
		args = append(args, "--routing", c.opts.routing)
	}
	if secret != "" {
		args = append(args, "--cluster-secret", secret)
	}
	args = append(args, c.opts.args...)
	m.Node = startNodeWith(c.t, filepath.Join(c.dir, name), nodeOptions{
		addr: freeLoopbackAddr(c.t),
		args: args,
		env:  append([]string{"ATOLL_CLUSTER_FAST=true"}, c.opts.env...),
	})
	// Registered after startNodeWith's cleanup, so it runs first: SIGKILL
	// is quick (a SIGTERM would hand blobs off to members being stopped
	// too) and also ends a SIGSTOPped process.
	c.t.Cleanup(func() {
		if m.running() {
			m.Kill()
		}
	})
	c.members = append(c.members, m)
	return m
}

// live returns the members neither killed nor frozen.
func (c *testCluster) live() []*clusterMember {
	var out []*clusterMember
	for _, m := range c.members {
		if !m.killed && !m.frozen && m.running() {
			out = append(out, m)
		}
	}
	return out
}

// memberNames returns the members' names.
func memberNames(ms []*clusterMember) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.name
	}
	return out
}

// waitFormed waits until every live member reports every live member
// alive and answers /readyz, and returns how long that took.
func (c *testCluster) waitFormed() time.Duration {
	c.t.Helper()
	live := c.live()
	return pollUntil(c.t, 20*time.Second, "every member sees "+strings.Join(memberNames(live), ",")+" alive and is ready", func() error {
		for _, m := range live {
			s, err := m.status()
			if err != nil {
				return err
			}
			for _, o := range live {
				if st := s.state(o.name); st != "alive" {
					return fmt.Errorf("%s sees %s %q", m.name, o.name, st)
				}
			}
		}
		// A member that has not caught up with the cluster's metadata
		// passes every request on to one that has (node/catchup.go):
		// a test that then looks at its disk would find nothing there.
		return allReady(live)
	})
}

// allReady fails unless every member answers /readyz with 200.
func allReady(ms []*clusterMember) error {
	for _, m := range ms {
		c := newClient(m.URL())
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := c.do(ctx, http.MethodGet, "/readyz", nil, nil, http.StatusOK)
		cancel()
		c.close()
		if err != nil {
			return fmt.Errorf("%s not ready: %w", m.name, err)
		}
	}
	return nil
}

// kill SIGKILLs the member.
func (m *clusterMember) kill() {
	m.Kill()
	m.killed = true
}

// freeze stops the process with SIGSTOP: it holds its sockets and answers
// nothing, like a member stuck in a long GC pause or a VM being migrated.
func (m *clusterMember) freeze() {
	m.t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		m.t.Fatalf("SIGSTOP %s: %v", m.name, err)
	}
	m.frozen = true
	fmt.Fprintf(m.log, "=== SIGSTOP\n")
}

// thaw resumes a frozen member with SIGCONT.
func (m *clusterMember) thaw() {
	m.t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		m.t.Fatalf("SIGCONT %s: %v", m.name, err)
	}
	m.frozen = false
	fmt.Fprintf(m.log, "=== SIGCONT\n")
}

// clusterReport is the answer of GET /_atoll/v1/cluster.
type clusterReport struct {
	Node     string `json:"node"`
	Replicas int    `json:"replicas"`
	Routing  string `json:"routing"`
	Members  []struct {
		Name  string `json:"name"`
		HTTP  string `json:"http"`
		GRPC  string `json:"grpc"`
		State string `json:"state"`
		Blobs int64  `json:"blobs"`
		Bytes int64  `json:"bytes"`
	} `json:"members"`
}

// state returns the state the status gives member name, "" if absent.
func (s *clusterReport) state(name string) string {
	for _, m := range s.Members {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

func (m *clusterMember) status() (*clusterReport, error) {
	c := newClient(m.URL())
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var h http.Header
	if m.secret != "" {
		h = http.Header{"Atoll-Cluster-Token": {node.HTTPToken(m.secret)}}
	}
	r, err := c.do(ctx, http.MethodGet, "/_atoll/v1/cluster", h, nil, http.StatusOK)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.name, err)
	}
	var s clusterReport
	if err := json.Unmarshal(r.body, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", m.name, err)
	}
	return &s, nil
}

// blobFiles returns the digests of the blob files under the member's
// DIR/blobs/<alg>/<xx>/<hex>.
func (m *clusterMember) blobFiles() (map[digest.Digest]bool, error) {
	root := filepath.Join(m.dataDir, "blobs")
	out := map[digest.Digest]bool{}
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while walking
		}
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) != 3 {
			return fmt.Errorf("%s: unexpected file %s", m.name, rel)
		}
		d, err := digest.Parse(parts[0] + ":" + parts[2])
		if err != nil || !strings.HasPrefix(parts[2], parts[1]) {
			return fmt.Errorf("%s: file %s is not a blob", m.name, rel)
		}
		out[d] = true
		return nil
	})
	return out, err
}

// blobPlacement maps each blob on the members' disks to the names of the
// members holding it, sorted.
type blobPlacement map[digest.Digest][]string

func placementOf(ms []*clusterMember) (blobPlacement, map[string]int, error) {
	p := blobPlacement{}
	counts := map[string]int{}
	for _, m := range ms {
		files, err := m.blobFiles()
		if err != nil {
			return nil, nil, err
		}
		counts[m.name] = len(files)
		for d := range files {
			p[d] = append(p[d], m.name)
		}
	}
	for _, holders := range p {
		sort.Strings(holders)
	}
	return p, counts, nil
}

// checkPlacement reports, for the blobs in want, every one not held by
// exactly replicas of ms, every one not on the owners the ring of ms names
// (when onOwners), and every blob file that is not in want.
func checkPlacement(ms []*clusterMember, want map[digest.Digest]bool, replicas int, onOwners bool) (blobPlacement, map[string]int, error) {
	p, counts, err := placementOf(ms)
	if err != nil {
		return nil, nil, err
	}
	r := ring.New(ring.Config{}, memberNames(ms))
	var bad []string
	for d := range want {
		holders := p[d]
		switch owners := sortedCopy(r.Owners(d, replicas)); {
		case len(holders) != replicas:
			bad = append(bad, fmt.Sprintf("%s on %d members %v (ring owners %v)", d.Encoded()[:12], len(holders), holders, owners))
		case onOwners && !slices.Equal(holders, owners):
			bad = append(bad, fmt.Sprintf("%s on %v, ring owners %v", d.Encoded()[:12], holders, owners))
		}
	}
	for d, holders := range p {
		if !want[d] {
			bad = append(bad, fmt.Sprintf("%s on %v was never pushed", d.Encoded()[:12], holders))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		more := ""
		if len(bad) > 8 {
			more, bad = fmt.Sprintf(" (and %d more)", len(bad)-8), bad[:8]
		}
		return p, counts, fmt.Errorf("%d blobs misplaced%s: %s", len(bad), more, strings.Join(bad, "; "))
	}
	return p, counts, nil
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// waitPlaced waits until every blob in want is held by exactly replicas of
// ms, on the ring's owners, with no other blob file anywhere, and returns
// the placement, the blob count per member and how long it took.
func waitPlaced(t *testing.T, timeout time.Duration, ms []*clusterMember, want map[digest.Digest]bool, replicas int) (blobPlacement, map[string]int, time.Duration) {
	t.Helper()
	var p blobPlacement
	var counts map[string]int
	took := pollUntil(t, timeout, fmt.Sprintf("%d blobs on exactly %d of %v, on their ring owners", len(want), replicas, memberNames(ms)), func() error {
		var err error
		p, counts, err = checkPlacement(ms, want, replicas, true)
		return err
	})
	return p, counts, took
}

// checkStatsAgree fails unless, on every member of ms, /_atoll/v1/cluster
// gives each member of ms the blob count its directory holds; the counts
// of other members travel by gossip, so it polls.
func checkStatsAgree(t *testing.T, ms []*clusterMember) {
	t.Helper()
	pollUntil(t, 15*time.Second, "cluster endpoints' blob counts agree with the files", func() error {
		_, counts, err := placementOf(ms)
		if err != nil {
			return err
		}
		for _, m := range ms {
			s, err := m.status()
			if err != nil {
				return err
			}
			for _, o := range ms {
				found := false
				for _, e := range s.Members {
					if e.Name != o.name {
						continue
					}
					found = true
					if e.Blobs != int64(counts[o.name]) || e.State != "alive" {
						return fmt.Errorf("%s reports %s %s with %d blobs; its directory holds %d", m.name, o.name, e.State, e.Blobs, counts[o.name])
					}
				}
				if !found {
					return fmt.Errorf("%s does not list %s", m.name, o.name)
				}
			}
		}
		return nil
	})
}

// pollUntil calls cond every 100ms until it returns nil and returns how
// long that took; if timeout passes first, the test fails with cond's last
// error.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s: %v", timeout, what, err)
		}
		time.Sleep(100 * time.Millisecond) // poll interval inside the deadline loop
	}
}

// Port allocation. The gossip port must be free for TCP and UDP; portAlloc
// handed out once are never handed out again in this process, so members
// started in a row cannot collide.
var portAlloc struct {
	mu   sync.Mutex
	used map[int]bool
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	return freePortOnce(t, false)
}

func freeGossipAddr(t *testing.T) string {
	t.Helper()
	return freePortOnce(t, true)
}

func freePortOnce(t *testing.T, udpToo bool) string {
	t.Helper()
	portAlloc.mu.Lock()
	defer portAlloc.mu.Unlock()
	if portAlloc.used == nil {
		portAlloc.used = map[int]bool{}
	}
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		addr := ln.Addr().(*net.TCPAddr)
		ok := !portAlloc.used[addr.Port]
		if ok && udpToo {
			pc, err := net.ListenPacket("udp", addr.String())
			if ok = err == nil; ok {
				pc.Close()
			}
		}
		ln.Close()
		if ok {
			portAlloc.used[addr.Port] = true
			return addr.String()
		}
	}
	t.Fatalf("no free port after 100 tries")
	return ""
}

// logMeasure logs a measured number on one line, also to stderr so it shows
// without -v; grep MEASURE in CI output.
func logMeasure(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	t.Log("MEASURE " + msg)
	fmt.Fprintln(os.Stderr, t.Name()+": MEASURE "+msg)
}
