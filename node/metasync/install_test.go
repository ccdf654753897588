package metasync

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage/metalog"
)

// cutNetwork is a Network whose snapshot chunks fail once ok of them were
// answered: a connection lost, or the joining member killed, in the middle
// of an install.
type cutNetwork struct {
	*Network
	ok atomic.Int64 // chunks still answered
}

var errCut = errors.New("cut in the middle of a snapshot")

func (n *cutNetwork) Snapshot(ctx context.Context, member, after string, limit int) (metalog.Chunk, error) {
	if n.ok.Add(-1) < 0 {
		return metalog.Chunk{}, errCut
	}
	return n.Network.Snapshot(ctx, member, after, limit)
}

// A join cut in the middle of installing a snapshot leaves the member
// behind (its vector is not raised, so it is not caught up); after a
// restart the install resumes where it stopped (its progress is on disk)
// and the member converges, deletes and newer writes made meanwhile
// included, and the entries it installed before the cut do not override
// newer ones.
func TestInterruptedInstallRestarts(t *testing.T) {
	net := NewNetwork()
	cfg := trimConfig()
	a := newMemberConfig(t, net, "a", cfg)
	for i := range 30 {
		must(t, a.store.PutManifest(ctx, "r", manifest(fmt.Sprint(i)), fmt.Sprintf("t%d", i)))
	}
	must(t, a.r.Trim(ctx))

	path := filepath.Join(t.TempDir(), "metadata.db")
	e := openMember(t, net, path, "e", cfg)
	cut := &cutNetwork{Network: net}
	cut.ok.Store(25) // of 30 chunks of 3 entries: records, links, tags
	e.r.Connect(cut)
	e.followOnly(t, "a")
	if err := e.r.CatchUp(ctx); !errors.Is(err, errCut) {
		t.Fatalf("catching up over a cut snapshot: %v, want the cut", err)
	}
	if got, want := e.store.Vector()["a"], a.store.Vector()["a"]; got >= want {
		t.Fatalf("after a cut install e says it applied a/%d of a/%d", got, want)
	}
	if len(e.store.Repositories("", 0)) == 0 {
		t.Fatal("the chunks before the cut were not installed")
	}

	// Meanwhile a retags what e installed and deletes a tag; e restarts.
	a.store.Observe(e.store.Stamp())
	must(t, a.store.PutManifest(ctx, "r", manifest("later"), "t0"))
	must(t, a.store.DeleteTag(ctx, "r", "t1"))
	must(t, e.store.Close())
	e = openMember(t, net, path, "e", cfg)
	count := &cutNetwork{Network: net}
	count.ok.Store(1000)
	e.r.Connect(count)
	e.followOnly(t, "a")
	must(t, e.r.CatchUp(ctx))
	if asked := 1000 - count.ok.Load(); asked > 10 {
		t.Errorf("the install resumed after the restart asked for %d chunks; it had 5 of 30 left", asked)
	}
	converged(t, a, e)
	if got, _ := e.store.Tag("r", "t0"); got != manifest("later").Descriptor.Digest {
		t.Errorf("t0 = %s on e, want the later write %s", got, manifest("later").Descriptor.Digest)
	}
	if _, err := e.store.Tag("r", "t1"); err == nil {
		t.Error("t1, deleted on a, resolves on e")
	}
}

// Install refuses a chunk whose entries are not in key order: its range
// would not say which stored keys it lacks.
func TestInstallRefusesUnsortedChunk(t *testing.T) {
	net := NewNetwork()
	e := newMemberConfig(t, net, "e", trimConfig())
	d := digest.FromString("x")
	c := metalog.Chunk{Entries: []metalog.Op{
		{Key: "r\x00b\x00b\x00" + d.String(), Value: []byte("1"), Stamp: 2, Origin: "a"},
		{Key: "r\x00a\x00b\x00" + d.String(), Value: []byte("1"), Stamp: 2, Origin: "a"},
	}}
	if err := e.store.Install(ctx, "", c, 0); err == nil {
		t.Fatal("an unsorted chunk was installed")
	}
}

// The prefetch budget bounds the MiB of chunks fetched and not installed:
// a take past it waits until an install gives some back, a chunk larger
// than the whole budget takes all of it, and a take cut short by its
// context gives back what it took.
func TestPrefetchBudget(t *testing.T) {
	b := newBudget()
	all := prefetchBytes >> 20
	if n, err := b.take(ctx, all+10); err != nil || n != all {
		t.Fatalf("take past the budget: %d, %v; want %d", n, err, all)
	}
	b.give(all)
	if n, err := b.take(ctx, all-1); err != nil || n != all-1 {
		t.Fatalf("take %d: %d, %v", all-1, n, err)
	}
	short, cancel := context.WithCancel(ctx)
	took := make(chan error, 1)
	go func() {
		_, err := b.take(short, 2) // one is free, the second waits
		took <- err
	}()
	select {
	case err := <-took:
		t.Fatalf("a take past the budget returned (%v) before anything was given back", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-took; err == nil {
		t.Fatal("a take cut short by its context: no error")
	}
	if len(b) != all-1 {
		t.Fatalf("after a take cut short: %d MiB taken, want %d", len(b), all-1)
	}
	go func() {
		_, err := b.take(ctx, 2)
		took <- err
	}()
	b.give(1)
	if err := <-took; err != nil {
		t.Fatal(err)
	}
	if len(b) != all {
		t.Fatalf("%d MiB taken, want %d", len(b), all)
	}
}
