package peer

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"
)

// TestMembership runs three members started out of order through joining,
// stats, a graceful leave and a crash.
func TestMembership(t *testing.T) {
	t.Parallel()
	log := testLogger(t)
	pa, pb, pc := freePort(t), freePort(t), freePort(t)
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }

	// a joins b, which is not started yet: a must retry.
	a := newMember(t, log, "a", pa, func(c *Config) { c.Join = []string{addr(pb)} })
	a.Start()
	waitFor(t, 5*time.Second, "a to retry its join", func() bool { return a.joinAttempts.Load() >= 2 })
	if a.Joined() {
		t.Fatal("a joined before any other member started")
	}

	// b joins c, not started either; a's retries reach b.
	b := newMember(t, log, "b", pb, func(c *Config) { c.Join = []string{addr(pc)} })
	b.Start()
	waitFor(t, 10*time.Second, "a to join b", func() bool { return a.Joined() && b.Joined() })

	// c joins by name, without knowing a's address as an IP.
	c := newMember(t, log, "c", pc, func(c *Config) { c.Join = []string{"localhost:" + strconv.Itoa(pa)} })
	c.Start()

	all := []*member{a, b, c}
	converged := func() bool {
		for _, m := range all {
			ms := m.Members()
			if len(ms) != 3 {
				return false
			}
			for _, x := range ms {
				if x.State != StateAlive {
					return false
				}
			}
		}
		return true
	}
	waitFor(t, 10*time.Second, "three alive members everywhere", converged)

	for _, m := range all {
		for i, x := range m.Members() {
			want := all[i]                       // Members is sorted by name: a, b, c
			grpcAddr := want.lis.Addr().String() // bound to 127.0.0.1:0
			if x.Name != want.cfg.NodeName || x.HTTP != want.http || x.GRPC != grpcAddr || x.Self != (m == want) {
				t.Errorf("%s sees %+v, want name %s http %s grpc %s self %v", m.cfg.NodeName, x, want.cfg.NodeName, want.http, grpcAddr, m == want)
			}
		}
		if m.events.n.Load() == 0 {
			t.Errorf("%s: Events.MembershipChanged never called", m.cfg.NodeName)
		}
	}

	// Stats announced by a reach the others.
	a.SetStats(7, 7000)
	waitFor(t, 10*time.Second, "a's stats to reach b and c", func() bool {
		for _, m := range []*member{b, c} {
			x := m.Members()[0]
			if x.Name != "a" || x.Blobs != 7 || x.Bytes != 7000 {
				return false
			}
		}
		return true
	})
	if x := a.Members()[0]; x.Blobs != 7 || x.Bytes != 7000 || !x.Self {
		t.Errorf("a sees itself as %+v, want its own stats", x)
	}

	// b leaves gracefully: reported left, and not callable.
	if err := b.Leave(5 * time.Second); err != nil {
		t.Fatalf("b.Leave: %v", err)
	}
	b.Close()
	waitFor(t, 10*time.Second, "a and c to report b left", func() bool {
		return memberState(a.Cluster, "b") == StateLeft && memberState(c.Cluster, "b") == StateLeft
	})
	if _, err := a.Client().Vector(context.Background(), "b"); !errors.Is(err, ErrMemberDown) {
		t.Errorf("calling b after it left: %v, want ErrMemberDown", err)
	}

	// c crashes (no Leave): reported dead.
	c.Close()
	waitFor(t, 15*time.Second, "a to report c dead", func() bool { return memberState(a.Cluster, "c") == StateDead })
	if got := len(a.Members()); got != 3 {
		t.Errorf("a reports %d members, want 3 (itself alive, b left, c dead)", got)
	}
	if _, err := a.Client().Has(context.Background(), "nobody", nil); !errors.Is(err, ErrMemberUnknown) {
		t.Errorf("calling an unknown member: %v, want ErrMemberUnknown", err)
	}
}

func TestResolveJoin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		entry string
		want  string // one address that must be among the results
	}{
		{"10.0.0.1:7000", "10.0.0.1:7000"},
		{"10.0.0.1", "10.0.0.1:7946"},
		{"[::1]:7000", "[::1]:7000"},
		{"::1", "[::1]:7946"},
		{"localhost", "127.0.0.1:7946"},
		{"localhost:7000", "127.0.0.1:7000"},
	} {
		got, err := resolveJoin(ctx, tc.entry, 7946)
		if err != nil {
			t.Errorf("resolveJoin(%q): %v", tc.entry, err)
			continue
		}
		found := false
		for _, g := range got {
			found = found || g == tc.want
		}
		if !found {
			t.Errorf("resolveJoin(%q) = %v, want %s among them", tc.entry, got, tc.want)
		}
	}
	for _, bad := range []string{":7000", "host:port"} {
		if _, err := resolveJoin(ctx, bad, 7946); err == nil {
			t.Errorf("resolveJoin(%q) succeeded, want an error", bad)
		}
	}
}
