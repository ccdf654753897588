package peer

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Member states, as Member.State reports them.
const (
	StateAlive = "alive"
	// StateSuspect is reserved for a member the failure detector suspects.
	// memberlist v0.7 reports suspicion neither to delegates nor in the
	// Node it hands out, so this package reports a suspected member alive
	// until memberlist declares it dead.
	StateSuspect = "suspect"
	StateDead    = "dead" // stopped answering probes
	StateLeft    = "left" // left gracefully (Leave)
)

// Member is one member of the cluster as this member last saw it.
type Member struct {
	Name  string `json:"name"`
	HTTP  string `json:"http"`  // host:port of its registry HTTP API
	GRPC  string `json:"grpc"`  // host:port of its gRPC services
	State string `json:"state"` // StateAlive, StateDead or StateLeft
	Blobs int64  `json:"blobs"` // blobs it holds, as it last announced
	Bytes int64  `json:"bytes"` // bytes of those blobs
	Self  bool   `json:"self"`  // this member
	// Leaving is set once the member announced that it stops: it still
	// answers until it is gone, but it will not keep what it is given.
	Leaving bool `json:"leaving,omitempty"`
}

// nodeMeta is a member's memberlist node metadata: JSON, well under
// memberlist.MetaMaxSize (512 bytes).
type nodeMeta struct {
	HTTP  string `json:"h"`
	GRPC  string `json:"g"`
	Blobs int64  `json:"b,omitempty"`
	Bytes int64  `json:"s,omitempty"`
}

func (m nodeMeta) encode() []byte {
	b, _ := json.Marshal(m) // strings and integers only: cannot fail
	return b
}

// checkMetaSize reports addresses too long to fit the node metadata with
// any stats.
func checkMetaSize(http, grpc string) error {
	max := nodeMeta{HTTP: http, GRPC: grpc, Blobs: -1 << 63, Bytes: -1 << 63}.encode()
	if len(max) > memberlist.MetaMaxSize {
		return fmt.Errorf("peer: advertised addresses too long for the %d bytes of node metadata", memberlist.MetaMaxSize)
	}
	return nil
}

// memberTable is the last known state of every member seen since start,
// kept from memberlist's events: memberlist forgets dead members after a
// while, and tells its delegates nothing that distinguishes a leave from a
// death (the leaving member announces itself with msgLeaving).
type memberTable struct {
	self        string
	forgetAfter time.Duration

	mu sync.Mutex
	m  map[string]*memberEntry
}

type memberEntry struct {
	Member
	since time.Time // when State last changed
	addr  net.IP    // gossip address
	port  uint16
	// Member.Leaving: it announced that it leaves, so its death is a leave.
}

func newMemberTable(self string, forgetAfter time.Duration) *memberTable {
	return &memberTable{self: self, forgetAfter: forgetAfter, m: make(map[string]*memberEntry)}
}

// record stores what an event said about member n. It returns the state
// the member had before ("" if new) and whether its gRPC address changed.
// A member that announced it leaves is recorded left rather than dead.
func (t *memberTable) record(n *memberlist.Node, meta nodeMeta, state string) (prev string, grpcChanged bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[n.Name]
	if !ok {
		e = &memberEntry{Member: Member{Name: n.Name, Self: n.Name == t.self}}
		t.m[n.Name] = e
	}
	prev = e.State
	grpcChanged = ok && meta.GRPC != "" && e.GRPC != meta.GRPC
	if meta.HTTP != "" || meta.GRPC != "" { // a leave event may carry none
		e.HTTP, e.GRPC, e.Blobs, e.Bytes = meta.HTTP, meta.GRPC, meta.Blobs, meta.Bytes
	}
	e.addr, e.port = slices.Clone(n.Addr), n.Port
	switch {
	case state == StateDead && e.Leaving:
		state = StateLeft
	case state == StateAlive && prev != StateAlive:
		e.Leaving = false // back, or new
	}
	if prev != state {
		e.State, e.since = state, time.Now()
	}
	return prev, grpcChanged
}

// markLeaving notes that member name announced it leaves. It reports
// whether that changed what Members says of it.
func (t *memberTable) markLeaving(name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[name]
	if !ok {
		return false
	}
	changed := !e.Leaving
	e.Leaving = true
	if e.State == StateDead { // its leave message overtook the announcement
		e.State, e.since = StateLeft, time.Now()
		changed = true
	}
	return changed
}

// staying reports whether another member is alive and has not announced
// that it leaves.
func (t *memberTable) staying() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.m {
		if e.State == StateAlive && !e.Self && !e.Leaving {
			return true
		}
	}
	return false
}

// aliveOthers returns the gossip addresses of the other alive members.
func (t *memberTable) aliveOthers() []*memberlist.Node {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*memberlist.Node
	for _, e := range t.m {
		if e.State == StateAlive && !e.Self {
			out = append(out, &memberlist.Node{Name: e.Name, Addr: e.addr, Port: e.port})
		}
	}
	return out
}

// get returns member name.
func (t *memberTable) get(name string) (Member, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[name]
	if !ok {
		return Member{}, false
	}
	return e.Member, true
}

// list returns every member, sorted by name, forgetting those dead or gone
// for longer than forgetAfter.
func (t *memberTable) list() []Member {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Member, 0, len(t.m))
	for name, e := range t.m {
		if e.State != StateAlive && !e.Self && time.Since(e.since) > t.forgetAfter {
			delete(t.m, name)
			continue
		}
		out = append(out, e.Member)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// gossipDelegate receives memberlist's callbacks: node metadata and user
// messages (memberlist.Delegate) and membership events
// (memberlist.EventDelegate). memberlist calls the event methods one at a
// time, in order; NotifyMsg may run concurrently with them.
type gossipDelegate struct {
	events *membershipEvents
	stats  *localStats
}

func (d gossipDelegate) NodeMeta(limit int) []byte {
	b := d.stats.meta().encode()
	if len(b) > limit { // checked in New; never send what memberlist rejects
		return nil
	}
	return b
}

// msgLeaving starts the user message a member sends to the others just
// before it leaves: memberlist v0.7 tells NotifyLeave nothing that
// distinguishes a leave from a death (hashicorp/memberlist#293).
const msgLeaving = 'L'

func (d gossipDelegate) NotifyMsg(msg []byte) {
	if len(msg) > 1 && msg[0] == msgLeaving && d.events.members.markLeaving(string(msg[1:])) {
		d.events.changed()
	}
}

func (gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (gossipDelegate) LocalState(join bool) []byte                { return nil }
func (gossipDelegate) MergeRemoteState(buf []byte, join bool)     {}

func (d gossipDelegate) NotifyJoin(n *memberlist.Node)   { d.events.observe(n, StateAlive) }
func (d gossipDelegate) NotifyUpdate(n *memberlist.Node) { d.events.observe(n, StateAlive) }

func (d gossipDelegate) NotifyLeave(n *memberlist.Node) {
	if n.State == memberlist.StateLeft { // once memberlist fills it in
		d.events.observe(n, StateLeft)
	} else {
		d.events.observe(n, StateDead) // or left, if it announced it
	}
}

// membershipEvents records memberlist's events in the member table, drops
// the pooled connections they make stale, and tells Events once the
// Cluster started. Its methods may be called concurrently; Events hears
// one call at a time.
type membershipEvents struct {
	self    string // this member's name
	members *memberTable
	pool    *connPool
	log     *slog.Logger
	events  Events       // may be nil
	started *atomic.Bool // the Cluster's: set by Start

	mu sync.Mutex // one Events call at a time
}

// observe records a membership event, drops the pooled connection of a
// member that is gone or moved, and tells Events.
func (e *membershipEvents) observe(n *memberlist.Node, state string) {
	var meta nodeMeta
	if len(n.Meta) > 0 {
		if err := json.Unmarshal(n.Meta, &meta); err != nil {
			e.log.Debug("member metadata unreadable", "member", n.Name, "err", err)
		}
	}
	prev, grpcChanged := e.members.record(n, meta, state)
	if state != StateAlive || grpcChanged {
		e.pool.drop(n.Name)
	}
	if now, _ := e.members.get(n.Name); prev != now.State && n.Name != e.self {
		e.log.Info("member "+now.State, "member", n.Name, "gossip", n.Address(), "http", meta.HTTP, "grpc", meta.GRPC)
	}
	e.changed()
}

// changed tells Events, one call at a time.
func (e *membershipEvents) changed() {
	if e.started.Load() && e.events != nil {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.events.MembershipChanged()
	}
}

// AnnounceLeaving tells every other alive member, directly, that this one
// is about to leave, waiting up to timeout: from then on they report it
// Leaving, and dead as left. Call it before handing off, so that members
// stopping at the same time do not count on each other; Leave calls it if
// it was not called.
func (c *Cluster) AnnounceLeaving(timeout time.Duration) {
	if c.announced.Swap(true) {
		return
	}
	c.members.markLeaving(c.cfg.NodeName)
	msg := append([]byte{msgLeaving}, c.cfg.NodeName...)
	var wg sync.WaitGroup
	for _, n := range c.members.aliveOthers() {
		wg.Go(func() {
			if err := c.ml.SendReliable(n, msg); err != nil {
				c.log.Debug("announcing leave", "member", n.Name, "err", err)
			}
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// Members returns every member this one has seen, itself included, sorted
// by name: alive ones, and those that died or left within
// Config.ForgetAfter. This member's stats are the latest given to SetStats.
func (c *Cluster) Members() []Member {
	ms := c.members.list()
	for i := range ms {
		if ms[i].Self {
			m := c.stats.meta()
			ms[i].Blobs, ms[i].Bytes = m.Blobs, m.Bytes
		}
	}
	return ms
}

// SetStats sets the blob count and bytes this member announces. It does not
// block: the announcement goes out in the background, at most once per
// Config.StatsInterval, so it may be called after every blob written.
func (c *Cluster) SetStats(blobs, bytes int64) { c.stats.set(blobs, bytes) }

// localStats is what this member advertises in its node metadata: its
// addresses and the blobs it holds. Its methods may be called concurrently.
type localStats struct {
	http, grpc string        // advertised addresses
	dirty      chan struct{} // (1) an announcement is due

	mu           sync.Mutex
	blobs, bytes int64
}

// set is Cluster.SetStats.
func (s *localStats) set(blobs, bytes int64) {
	s.mu.Lock()
	changed := s.blobs != blobs || s.bytes != bytes
	s.blobs, s.bytes = blobs, bytes
	s.mu.Unlock()
	if changed {
		select {
		case s.dirty <- struct{}{}:
		default: // an announcement is already due
		}
	}
}

// meta returns this member's node metadata.
func (s *localStats) meta() nodeMeta {
	s.mu.Lock()
	defer s.mu.Unlock()
	return nodeMeta{HTTP: s.http, GRPC: s.grpc, Blobs: s.blobs, Bytes: s.bytes}
}

// announce re-advertises this member through ml whenever set changed the
// stats, at most once per every, until done is closed.
func (s *localStats) announce(done <-chan struct{}, ml *memberlist.Memberlist, every time.Duration, log *slog.Logger) {
	for {
		select {
		case <-done:
			return
		case <-s.dirty:
		}
		if err := ml.UpdateNode(time.Second); err != nil {
			log.Debug("announcing stats", "err", err)
		}
		t := time.NewTimer(every)
		select {
		case <-done:
			t.Stop()
			return
		case <-t.C:
		}
	}
}
