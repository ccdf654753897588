package metasync

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage/metalog"
)

// trimConfig has a short horizon, so a member is "gone too long" within a
// test, and small snapshot chunks.
func trimConfig() Config {
	cfg := testConfig
	cfg.WriteTimeout = 5 * time.Second    // a loaded machine's fsyncs
	cfg.Horizon = 1500 * time.Millisecond // well past a test's steps, under load too
	cfg.SnapshotChunk = 3
	cfg.SnapshotAfter = -1 // only when a log was trimmed
	return cfg
}

func (m *member) logLen(t *testing.T) int {
	t.Helper()
	n, err := m.store.LogLen()
	must(t, err)
	return n
}

func (m *member) tombstones(t *testing.T) int {
	t.Helper()
	ts, err := m.store.Tombstones(^uint64(0))
	must(t, err)
	return len(ts)
}

// followOnly makes m follow exactly peers until the test ends.
func (m *member) followOnly(t testing.TB, peers ...string) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m.r.Follow(ctx, peers)
}

// The log is trimmed of what every member applied, and no further while a
// member gone for less than the horizon lacks it; once it is gone longer,
// the rest goes and so do the tombstones. It then comes back through a
// snapshot (in chunks, resumed after lost ones) and converges: a tag deleted
// while it was away is gone there too.
func TestTrimHorizonAndSnapshot(t *testing.T) {
	net := NewNetwork()
	cfg := trimConfig()
	a, b, c := newMemberConfig(t, net, "a", cfg), newMemberConfig(t, net, "b", cfg), newMemberConfig(t, net, "c", cfg)
	a.followOnly(t, "b", "c")
	b.followOnly(t, "a", "c")
	c.followOnly(t, "a", "b")
	for i := range 5 {
		must(t, a.store.PutManifest(ctx, "r", manifest(fmt.Sprint(i)), fmt.Sprintf("t%d", i)))
	}
	must(t, a.r.Trim(ctx))
	if n := a.logLen(t); n != 0 {
		t.Fatalf("every member applied a's 5 batches: %d left in a's log after trimming", n)
	}

	// c goes away; a and b go on.
	net.SetDown("c", true)
	a.followOnly(t, "b")
	b.followOnly(t, "a")
	must(t, a.store.DeleteTag(ctx, "r", "t0"))
	for i := 5; i < 10; i++ {
		must(t, a.store.PutManifest(ctx, "r", manifest(fmt.Sprint(i)), fmt.Sprintf("t%d", i)))
	}
	before := a.logLen(t)
	must(t, a.r.Trim(ctx))
	if n := a.logLen(t); n != before || n == 0 {
		t.Fatalf("c, gone for less than the horizon, lacks them: a's log went from %d to %d batches", before, n)
	}
	// Past the horizon c holds nothing back: the log empties and, a round
	// later, the tombstone of t0 goes too.
	waitFor(t, "a's log and tombstones gone", func() bool { // within 5s
		must(t, a.r.Trim(ctx))
		must(t, b.r.Trim(ctx))
		return a.logLen(t) == 0 && a.tombstones(t) == 0 && b.tombstones(t) == 0
	})

	net.SetDown("c", false)
	c.followOnly(t, "a", "b")
	net.FailChunks(2) // the snapshot resumes from where it stopped
	must(t, c.r.CatchUp(ctx))
	converged(t, a, b, c)
	if _, err := c.store.Tag("r", "t0"); err == nil {
		t.Errorf("t0, deleted while c was away, is back on c")
	}
}

// Last writer wins across a snapshot boundary: a write older than the
// snapshot, replayed after it, does not override the newer value the
// snapshot brought; a snapshot entry older than what a member holds does
// not override it either.
func TestLastWriterWinsAcrossSnapshot(t *testing.T) {
	net := NewNetwork()
	cfg := trimConfig()
	a, b, d := newMemberConfig(t, net, "a", cfg), newMemberConfig(t, net, "b", cfg), newMemberConfig(t, net, "d", cfg)
	a.followOnly(t, "b")
	b.followOnly(t, "a")
	// d, cut off, moves tag x first: an older write nobody else has.
	old, newer, newest := manifest("old"), manifest("new"), manifest("newest")
	must(t, d.store.PutManifest(ctx, "r", old, "x"))
	a.store.Observe(d.store.Stamp()) // a's write comes later
	must(t, a.store.PutManifest(ctx, "r", newer, "x"))
	for i := range 4 {
		must(t, a.store.LinkBlob(ctx, "r", digest.FromString(fmt.Sprint(i)), 1))
	}
	must(t, a.r.Trim(ctx))
	must(t, b.r.Trim(ctx))
	if a.logLen(t) != 0 {
		t.Fatal("a's log not trimmed")
	}

	// e joins: a's snapshot first (its log is trimmed), then d's log.
	e := newMemberConfig(t, net, "e", cfg)
	e.followOnly(t, "a", "b", "d")
	must(t, e.r.CatchUp(ctx))
	if got, _ := e.store.Tag("r", "x"); got != newer.Descriptor.Digest {
		t.Errorf("after a's snapshot and d's older write, e holds x = %s, want the newer %s", got, newer.Descriptor.Digest)
	}

	// f moves x last, then installs a's snapshot, whose x is older.
	f := newMemberConfig(t, net, "f", cfg)
	f.store.Observe(a.store.Stamp())
	must(t, f.store.PutManifest(ctx, "r", newest, "x")) // f follows nobody yet
	net.Tamper(func(_ string, bs []metalog.Batch) []metalog.Batch {
		var out []metalog.Batch // f's write must not reach a before its snapshot
		for _, b := range bs {
			if b.Origin != "f" {
				out = append(out, b)
			}
		}
		return out
	})
	f.followOnly(t, "a")
	must(t, f.r.CatchUp(ctx))
	if got, _ := a.store.Tag("r", "x"); got != newer.Descriptor.Digest {
		t.Fatalf("a holds x = %s before f's write reached it, want %s", got, newer.Descriptor.Digest)
	}
	if got, _ := f.store.Tag("r", "x"); got != newest.Descriptor.Digest {
		t.Errorf("after a's older snapshot, f holds x = %s, want its newer %s", got, newest.Descriptor.Digest)
	}
	net.Tamper(nil)

	// Once everyone has everything, all agree on f's x.
	for _, m := range []*member{a, b, d, e, f} {
		m.followOnly(t, without([]string{"a", "b", "d", "e", "f"}, m.name)...)
	}
	for _, m := range []*member{a, b, d, e, f} {
		must(t, m.r.CatchUp(ctx))
	}
	for _, m := range []*member{a, b, d, e, f} {
		must(t, m.r.CatchUp(ctx))
	}
	converged(t, a, b, d, e, f)
	if got, _ := a.store.Tag("r", "x"); got != newest.Descriptor.Digest {
		t.Errorf("x = %s everywhere, want the last write %s", got, newest.Descriptor.Digest)
	}
}

// A member more than SnapshotAfter batches behind installs a snapshot
// rather than replay the log, and a follower whose peer's log was trimmed
// past it pushes from where the peer stands after its snapshot.
func TestSnapshotWhenFarBehind(t *testing.T) {
	net := NewNetwork()
	cfg := trimConfig()
	cfg.SnapshotAfter = 4
	a := newMemberConfig(t, net, "a", cfg)
	for i := range 10 {
		must(t, a.store.LinkBlob(ctx, "r", digest.FromString(fmt.Sprint(i)), 1)) // a follows nobody
	}
	b := newMemberConfig(t, net, "b", cfg)
	b.followOnly(t, "a")
	must(t, b.r.CatchUp(ctx))
	converged(t, a, b)
	if n := b.logLen(t); n != 0 {
		t.Errorf("b replayed %d batches; want a snapshot (none)", n)
	}
	// b never ran Run, so it has not caught up: /readyz would say this.
	if doing := b.r.CatchingUp(); !strings.HasPrefix(doing, "installing a's snapshot: ") || !strings.Contains(doing, " entries in ") {
		t.Errorf("CatchingUp() = %q after a snapshot install, want it to say how far the install got", doing)
	}
	// a now follows b, whose log lacks a's early batches: it must push
	// the next writes all the same.
	a.followOnly(t, "b")
	must(t, a.store.PutManifest(ctx, "r", manifest("after"), "after"))
	converged(t, a, b)
}

func without(names []string, name string) []string {
	var out []string
	for _, n := range names {
		if n != name {
			out = append(out, n)
		}
	}
	return out
}
