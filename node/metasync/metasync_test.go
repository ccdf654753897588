package metasync

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metadb"
	"github.com/atollhq/atoll/storage/metalog"
)

// member is one cluster member in a test: its store, decorated, and the
// replicator behind it, connected to net.
type member struct {
	name  string
	store *Store
	r     *Replicator
}

// testConfig keeps writes waiting for every peer (a long AckGrace), so a
// write that returns is on every live follower: no test needs to poll for
// pushes. WriteTimeout is long enough for a loaded machine's fsyncs: only
// a write to a peer that is down waits it out.
var testConfig = Config{SyncInterval: 5 * time.Millisecond, WriteTimeout: 2 * time.Second, AckGrace: time.Minute}

func newMember(t *testing.T, net *Network, name string) *member {
	t.Helper()
	return newMemberConfig(t, net, name, testConfig)
}

func newMemberConfig(t *testing.T, net *Network, name string, cfg Config) *member {
	t.Helper()
	return openMember(t, net, filepath.Join(t.TempDir(), "metadata.db"), name, cfg)
}

// newJoiningMember is newMember for a member that joins others
// (Deps.Joining): Run catches up first, and its writes wait for that.
func newJoiningMember(t *testing.T, net *Network, name string) *member {
	t.Helper()
	return openMemberDeps(t, net, filepath.Join(t.TempDir(), "metadata.db"), testConfig, Deps{Self: name, Joining: true})
}

// openMember opens member name's store at path and joins it to net.
func openMember(tb testing.TB, net *Network, path, name string, cfg Config) *member {
	tb.Helper()
	return openMemberDeps(tb, net, path, cfg, Deps{Self: name})
}

func openMemberDeps(tb testing.TB, net *Network, path string, cfg Config, deps Deps) *member {
	tb.Helper()
	name := deps.Self
	s, err := metadb.Open(path, metadb.Options{Origin: name, Reserve: -1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	deps.Log = s
	r := New(cfg, deps)
	r.Connect(net)
	net.Add(name, s)
	return &member{name: name, store: Wrap(s, r), r: r}
}

// follow starts m's followers of peers until the test ends.
func (m *member) follow(t *testing.T, peers ...string) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m.r.Follow(ctx, peers)
}

func manifest(s string) *storage.Manifest {
	content := []byte(`{"schemaVersion":2,"config":{"digest":"` + digest.FromString(s).String() + `"}}`)
	return &storage.Manifest{
		Descriptor: v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(content), Size: int64(len(content))},
		Content:    content,
	}
}

// snapshot is what a client could observe of a store.
func snapshot(s *Store) map[string]any {
	out := map[string]any{"repos": s.Repositories("", 0)}
	for _, r := range s.Repositories("", 0) {
		tags, _ := s.Tags(r, "", 0)
		for _, tag := range tags {
			d, _ := s.Tag(r, tag)
			out[r+":"+tag] = d
		}
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// converged fails unless every member holds the same vector and state.
func converged(t *testing.T, ms ...*member) {
	t.Helper()
	for _, m := range ms[1:] {
		if a, b := ms[0].store.Vector(), m.store.Vector(); !reflect.DeepEqual(a, b) {
			t.Errorf("vectors differ: %s %v, %s %v", ms[0].name, a, m.name, b)
		}
		if a, b := snapshot(ms[0].store), snapshot(m.store); !reflect.DeepEqual(a, b) {
			t.Errorf("state differs:\n%s %v\n%s %v", ms[0].name, a, m.name, b)
		}
	}
}

// waitFor waits, up to 5s, until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

var ctx = context.Background()

// The later write to a tag wins on every member, though it comes from the
// member with the lower name: last writer wins by clock, and the origin
// only breaks ties.
func TestLastWriterWinsAcrossOrigins(t *testing.T) {
	net := NewNetwork()
	a, b, c := newMember(t, net, "a"), newMember(t, net, "b"), newMember(t, net, "c")
	a.follow(t, "b", "c")
	b.follow(t, "a", "c")
	older, newer := manifest("older"), manifest("newer")

	must(t, b.store.PutManifest(ctx, "r", older, "latest")) // returns once a and c hold it
	must(t, a.store.PutManifest(ctx, "r", newer, "latest")) // a saw b's write: a later clock
	for _, m := range []*member{a, b, c} {
		if d, err := m.store.Tag("r", "latest"); err != nil || d != newer.Descriptor.Digest {
			t.Errorf("%s: latest = %v, %v; want the later write %s", m.name, d, err, newer.Descriptor.Digest)
		}
	}
	converged(t, a, b, c)

	// A member that hears the writes in the other order agrees.
	d := newMember(t, net, "d")
	for _, origin := range []string{"a", "b"} {
		bs, err := c.store.Since(origin, 0, 100)
		must(t, err)
		must(t, d.store.Apply(ctx, bs))
	}
	converged(t, a, d)
}

// Batches that travel twice, out of order or past a gap are skipped until
// the gap is filled; a pull that meets a gap takes a snapshot.
func TestGapsAndDuplicates(t *testing.T) {
	net := NewNetwork()
	a, c := newMember(t, net, "a"), newMember(t, net, "c")
	for i := range 5 {
		must(t, a.store.LinkBlob(ctx, "r", digest.FromString(fmt.Sprint(i)), 1)) // a follows nobody
	}
	c.follow(t, "a")
	// Every batch travels twice, in reverse order.
	net.Tamper(func(_ string, bs []metalog.Batch) []metalog.Batch {
		var out []metalog.Batch
		for i := len(bs) - 1; i >= 0; i-- {
			out = append(out, bs[i], bs[i])
		}
		return out
	})
	b := newMember(t, net, "b")
	b.follow(t, "a")
	must(t, b.r.CatchUp(ctx)) // each round applies what is next in sequence
	converged(t, a, b)
	// A gap: batch 3 never arrives.
	net.Tamper(func(_ string, bs []metalog.Batch) []metalog.Batch {
		var out []metalog.Batch
		for _, b := range bs {
			if b.Seq != 3 {
				out = append(out, b)
			}
		}
		return out
	})
	// A pull that meets a gap in a's log (what a trimmed log looks like)
	// must end, not loop on it: it takes a's snapshot instead.
	must(t, c.r.CatchUp(ctx))
	converged(t, a, c)
	net.Tamper(nil)
	must(t, c.r.CatchUp(ctx))
	converged(t, a, c)
	must(t, c.store.Apply(ctx, mustSince(t, a.store, "a"))) // all of them again: a no-op
	converged(t, a, c)
}

func mustSince(t *testing.T, s *Store, origin string) []metalog.Batch {
	t.Helper()
	bs, err := s.Since(origin, 0, 1000)
	must(t, err)
	return bs
}

// A follower whose peer is down falls behind; writes meanwhile fail as
// unacknowledged but stay here, and the follower delivers all of them,
// in order, once the peer is back.
func TestFollowerFallsBehindAndCatchesUp(t *testing.T) {
	net := NewNetwork()
	a, b := newMember(t, net, "a"), newMember(t, net, "b")
	a.follow(t, "b")
	must(t, a.store.PutManifest(ctx, "r", manifest("1"), "one"))

	net.SetDown("b", true)
	err := a.store.PutManifest(ctx, "r", manifest("2"), "two")
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("write with its only peer down: %v, want ErrUnavailable", err)
	}
	must(t, a.store.Store.LinkBlob(ctx, "r", digest.FromString("x"), 1)) // undecorated: does not wait
	if lag := a.r.Lag(); lag != 2 {
		t.Errorf("lag with b down = %d, want 2", lag)
	}

	net.SetDown("b", false)
	must(t, a.store.PutManifest(ctx, "r", manifest("3"), "three")) // b acknowledges all four
	if lag := a.r.Lag(); lag != 0 {
		t.Errorf("lag after catching up = %d", lag)
	}
	converged(t, a, b)
}

// Anti-entropy fills a member that nobody pushes to: a new one.
func TestAntiEntropyFillsNewMember(t *testing.T) {
	net := NewNetwork()
	a, b := newMember(t, net, "a"), newMember(t, net, "b")
	a.follow(t, "b")
	b.follow(t, "a")
	for i := range 3 {
		must(t, a.store.PutManifest(ctx, "r", manifest(fmt.Sprint("a", i)), fmt.Sprint("a", i)))
		must(t, b.store.PutManifest(ctx, "s", manifest(fmt.Sprint("b", i)), fmt.Sprint("b", i)))
	}
	c := newMember(t, net, "c") // a and b do not follow c
	c.follow(t, "b")
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { c.r.Run(runCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	want := b.store.Vector()
	waitFor(t, "c to hold "+fmt.Sprint(want), func() bool { return reflect.DeepEqual(c.store.Vector(), want) })
	converged(t, a, b, c)
}

// A member that joins is not caught up until it holds what every peer
// had applied; a peer down keeps it so, and its return lets it finish.
func TestJoiningMemberCatchesUpBeforeReady(t *testing.T) {
	net := NewNetwork()
	a, b := newMember(t, net, "a"), newMember(t, net, "b")
	a.follow(t, "b")
	b.follow(t, "a")
	for i := range 3 {
		must(t, a.store.PutManifest(ctx, "r", manifest(fmt.Sprint("a", i)), fmt.Sprint("a", i)))
		must(t, b.store.PutManifest(ctx, "s", manifest(fmt.Sprint("b", i)), fmt.Sprint("b", i)))
	}
	c := newJoiningMember(t, net, "c")
	net.SetDown("a", true)
	c.follow(t, "a", "b")
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { c.r.Run(runCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	waitFor(t, "c to pull what b has", func() bool { return c.store.Vector()["b"] == b.store.Vector()["b"] })
	if c.r.CaughtUp() {
		t.Fatal("caught up while a peer it reached had not answered")
	}
	waitFor(t, "c to say it could not pull from a", func() bool {
		return strings.HasPrefix(c.r.CatchingUp(), "trying again after: a: ")
	})
	net.SetDown("a", false)
	waitFor(t, "c caught up", c.r.CaughtUp)
	if doing := c.r.CatchingUp(); doing != "" {
		t.Fatalf("CatchingUp() = %q once caught up, want \"\"", doing)
	}
	if !reflect.DeepEqual(c.store.Vector(), b.store.Vector()) {
		t.Fatalf("caught up holding %v, want %v", c.store.Vector(), b.store.Vector())
	}
	d := newMember(t, net, "d") // joins nobody: caught up at once
	dctx, dstop := context.WithCancel(ctx)
	ddone := make(chan struct{})
	go func() { d.r.Run(dctx); close(ddone) }()
	t.Cleanup(func() { dstop(); <-ddone })
	waitFor(t, "a member that joins nobody to be caught up", d.r.CaughtUp)
}

// Every write that appends to the log waits for a peer; upload sessions,
// which stay on this member, do not.
func TestEveryReplicatedWriteWaits(t *testing.T) {
	net := NewNetwork()
	cfg := testConfig
	cfg.WriteTimeout = 50 * time.Millisecond
	a := newMemberConfig(t, net, "a", cfg)
	newMember(t, net, "b")
	m := manifest("m")
	d := digest.FromString("blob")
	must(t, a.store.PutManifest(ctx, "r", m, "t"))
	must(t, a.store.LinkBlob(ctx, "r", d, 1))
	must(t, a.store.PutUpload(ctx, &storage.Upload{ID: "u", Repo: "r"}))
	must(t, a.store.PutUpload(ctx, &storage.Upload{ID: "v", Repo: "r"}))
	net.SetDown("b", true)
	a.follow(t, "b")

	must(t, a.store.DeleteUpload(ctx, "v")) // local only
	other, uploaded := digest.FromString("other"), digest.FromString("uploaded")
	writes := []struct {
		name  string
		write func() error
	}{
		{"PutManifest", func() error { return a.store.PutManifest(ctx, "r", manifest("n"), "u") }},
		{"DeleteTag", func() error { return a.store.DeleteTag(ctx, "r", "t") }},
		{"DeleteManifest", func() error { return a.store.DeleteManifest(ctx, "r", m.Descriptor.Digest) }},
		{"LinkBlob", func() error { return a.store.LinkBlob(ctx, "r", other, 1) }},
		{"UnlinkBlob", func() error { return a.store.UnlinkBlob(ctx, "r", d) }},
		{"UnlinkEverywhere", func() error { return a.store.UnlinkEverywhere(ctx, []digest.Digest{other}) }},
		{"CompleteUpload", func() error { return a.store.CompleteUpload(ctx, "u", uploaded, 1) }},
		{"Pin", func() error { _, err := a.store.Pin(ctx, "r", "pinned", d); return err }},
	}
	for _, w := range writes {
		if err := w.write(); !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("%s with its only peer down: %v, want ErrUnavailable", w.name, err)
		}
	}
	// A write that changes nothing has nothing to wait for.
	must(t, a.store.LinkBlob(ctx, "r", uploaded, 1))
}

// The decorated store answers the optional-capability checks its users
// make the way metadb's store does.
func TestStoreKeepsCapabilities(t *testing.T) {
	a := newMember(t, NewNetwork(), "a")
	checks := map[string]func(any) bool{
		"storage.Metadata":  func(v any) bool { _, ok := v.(storage.Metadata); return ok },
		"storage.Inventory": func(v any) bool { _, ok := v.(storage.Inventory); return ok },
		"BlobSize": func(v any) bool {
			_, ok := v.(interface {
				BlobSize(digest.Digest) (int64, bool)
			})
			return ok
		},
		"Pin": func(v any) bool {
			_, ok := v.(interface {
				Pin(context.Context, string, string, digest.Digest) (digest.Digest, error)
			})
			return ok
		},
		"Stamp/Observe": func(v any) bool {
			_, ok := v.(interface {
				Stamp() uint64
				Observe(uint64)
			})
			return ok
		},
	}
	for name, check := range checks {
		if check(a.store.Store) != check(a.store) {
			t.Errorf("%s: metadb %v, decorated %v", name, check(a.store.Store), check(a.store))
		}
	}
}

// A member that lost its metadata (a file moved aside, a backup restored)
// and rejoins holds less of its own log than its peers do. A write of its
// own before it caught up would reuse a sequence number its peers hold
// for another batch, which they would then skip as a duplicate: the write
// lost there, the old batch lost here. So its writes wait until it has
// caught up, and then take the next number.
func TestRejoinedMemberWritesAfterCatchingUp(t *testing.T) {
	net := NewNetwork()
	a, b := newMember(t, net, "a"), newMember(t, net, "b")
	a.follow(t, "b")
	for i := range 3 {
		must(t, a.store.PutManifest(ctx, "r", manifest(fmt.Sprint("old", i)), fmt.Sprint("old", i)))
	}
	converged(t, a, b)

	a = newJoiningMember(t, net, "a") // its store lost: empty, same name
	net.SetDown("b", true)
	a.follow(t, "b")
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { a.r.Run(runCtx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	waitFor(t, "a to begin catching up", func() bool { return a.r.CatchingUp() != "" })
	wrote := make(chan error, 1)
	go func() { wrote <- a.store.PutManifest(ctx, "r", manifest("new"), "new") }()
	time.Sleep(200 * time.Millisecond)
	if seq := a.store.Vector()["a"]; seq != 0 {
		t.Fatalf("a wrote batch %d of its log before it caught up", seq)
	}
	net.SetDown("b", false)
	waitFor(t, "a caught up", a.r.CaughtUp)
	must(t, <-wrote)
	if got := a.store.Vector()["a"]; got != 4 {
		t.Errorf("the write after catching up is batch %d of a's log, want 4", got)
	}
	waitFor(t, "b to hold a's new batch", func() bool { return b.store.Vector()["a"] == 4 })
	converged(t, a, b)
}
