package node

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/node/metasync"
	"github.com/atollhq/atoll/node/placement"
	"github.com/atollhq/atoll/node/route"
	"github.com/atollhq/atoll/peer"
	"github.com/atollhq/atoll/ring"
)

// ClusterConfig is the member's cluster: section (registry:2 has none; the
// ATOLL_* variables set its main keys). It is made of the configurations
// of the packages that do the work, decoded in place: peer's (membership,
// gossip, gRPC), placement's (replicas, rebalancing, the ring) and
// metasync's (metadata replication).
type ClusterConfig struct {
	peer.Config `yaml:",inline"`
	// Enabled starts gossip and gRPC. Default: on when Join or GossipAddr
	// is set; a member without them is a registry on its own.
	Enabled bool `yaml:"enabled"`
	// Routing is how a member serves a blob it does not hold: "proxy"
	// (stream it from an owner; default) or "redirect" (307 to the owner):
	// route.Config.Mode.
	Routing string `yaml:"routing"`
	// Placement places blobs: replicas, rebalanceinterval, settle, ring.
	Placement placement.Config `yaml:",inline"`
	// Metadata replicates metadata: syncinterval, writetimeout.
	Metadata metasync.Config `yaml:",inline"`
}

func (c *ClusterConfig) applyDefaults(httpAddr string) error {
	if !c.Enabled {
		c.Enabled = len(c.Join) > 0 || c.GossipAddr != ""
	}
	if c.Placement.Replicas <= 0 {
		c.Placement.Replicas = 2 // placement's default, which status reports
	}
	if c.Fast && c.Placement.Settle <= 0 {
		c.Placement.Settle = 200 * time.Millisecond
	}
	switch c.Routing {
	case "":
		c.Routing = route.ModeProxy
	case route.ModeProxy, route.ModeRedirect:
	default:
		return fmt.Errorf("cluster routing %q: want %s or %s", c.Routing, route.ModeProxy, route.ModeRedirect)
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = httpAddr
	}
	if strings.ContainsAny(c.NodeName, "/ ") {
		return fmt.Errorf("node name %q: no slashes or spaces", c.NodeName)
	}
	return nil
}

// view is one consistent picture of the cluster: who is there and the ring
// over the live members. It is replaced whole on every membership change.
type view struct {
	self    string
	members map[string]peer.Member
	ring    *ring.Ring
}

// live reports whether member name is alive or suspect.
func (v *view) live(name string) bool {
	m, ok := v.members[name]
	return ok && (m.State == peer.StateAlive || m.State == peer.StateSuspect)
}

// peers returns the live members other than this one, sorted.
func (v *view) peers() []string {
	var out []string
	for name := range v.members {
		if name != v.self && v.live(name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// preference returns every live member in the order the ring prefers them
// for blob d: its owners first.
func (v *view) preference(d digest.Digest) []string {
	return v.ring.Owners(d, v.ring.Len())
}

// views holds the current view; membership events replace it.
type views struct{ cur atomic.Pointer[view] }

func (vs *views) load() *view { return vs.cur.Load() }

// membership keeps the member's view of the cluster current: membership
// events (it is the cluster's peer.Events) rebuild the view, start
// metadata followers for new members and a rebalance.
type membership struct {
	self    string
	ring    ring.Config
	views   *views
	cluster *peer.Cluster // set once created
	changed chan struct{}
	log     *slog.Logger
}

func newMembership(self string, ringCfg ring.Config, vs *views, log *slog.Logger) *membership {
	return &membership{self: self, ring: ringCfg, views: vs, changed: make(chan struct{}, 1), log: log}
}

// refresh rebuilds the view from the cluster's member list and reports
// whether the set of live members changed.
func (m *membership) refresh() bool {
	members := map[string]peer.Member{}
	var live []string
	for _, pm := range m.cluster.Members() {
		members[pm.Name] = pm
		if pm.State == peer.StateAlive || pm.State == peer.StateSuspect {
			live = append(live, pm.Name)
		}
	}
	old := m.views.load()
	slices.Sort(live)
	if old != nil && slices.Equal(old.ring.Members(), live) {
		m.views.cur.Store(&view{self: m.self, members: members, ring: old.ring})
		return false
	}
	m.views.cur.Store(&view{self: m.self, members: members, ring: ring.New(m.ring, live)})
	return true
}

// MembershipChanged implements peer.Events. It runs on memberlist's
// goroutines, so it only signals watch.
func (m *membership) MembershipChanged() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// watch keeps the view current and starts the work a change calls for:
// followers for new members and a rebalance.
func (m *membership) watch(ctx context.Context, sync *metasync.Replicator, blobs *placement.Placer) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.changed:
		}
		ringChanged := m.refresh()
		sync.Follow(ctx, m.views.load().peers())
		if ringChanged {
			m.log.Info("cluster membership changed", "members", m.views.load().ring.Members())
			blobs.Kick()
		}
	}
}

// staying returns the other members that are alive and have not announced
// that they leave, sorted.
func (m *membership) staying() []string {
	var out []string
	for _, pm := range m.cluster.Members() {
		if !pm.Self && pm.State == peer.StateAlive && !pm.Leaving {
			out = append(out, pm.Name)
		}
	}
	slices.Sort(out)
	return out
}
