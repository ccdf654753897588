package placement

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/peer"
	"github.com/atollhq/atoll/storage"
)

// fakeCluster is members of one cluster in memory: each with its store,
// its view and its placer, all reaching one another through one fake
// transport.
type fakeCluster struct {
	net     *peer.FakeBlobTransport
	stores  map[string]*MemoryStore
	members map[string]*FakeMembers
	placers map[string]*Placer
}

func newFakeCluster(t *testing.T, replicas int, names ...string) *fakeCluster {
	t.Helper()
	c := &fakeCluster{net: peer.NewFakeBlobTransport(), stores: map[string]*MemoryStore{},
		members: map[string]*FakeMembers{}, placers: map[string]*Placer{}}
	for _, name := range names {
		store := NewMemoryStore()
		members := NewFakeMembers(name, names...)
		p, err := New(Config{Replicas: replicas, Settle: time.Millisecond},
			Deps{Self: name, Local: store, Transport: c.net, Members: members})
		if err != nil {
			t.Fatal(err)
		}
		c.net.Add(name, NewPeerBlobs(name, store))
		c.stores[name], c.members[name], c.placers[name] = store, members, p
	}
	return c
}

// holders returns the members that hold blob d, sorted.
func (c *fakeCluster) holders(d digest.Digest) []string {
	var out []string
	for name, s := range c.stores {
		if s.Holds(d) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// push commits data through member's served store, as the registry does on
// an upload's final PUT.
func (c *fakeCluster) push(t *testing.T, member string, data []byte) (digest.Digest, error) {
	t.Helper()
	ctx := context.Background()
	w, err := c.placers[member].Served().Writer(ctx, "upload-"+member, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(data)
	return d, w.Commit(ctx, d)
}

// TestPlaceWalksPastFailingOwners commits blobs on one member while the
// first other member of each blob's preference list fails: each blob must
// land on the first Replicas members of the list that answer, and the
// committing member keeps its copy only if it is one of them.
func TestPlaceWalksPastFailingOwners(t *testing.T) {
	c := newFakeCluster(t, 2, "a", "b", "c", "d", "e")
	r := c.members["a"].Ring()
	for i := range 40 {
		data := []byte(fmt.Sprintf("layer %d", i))
		prefs := r.Owners(digest.FromBytes(data), r.Len())
		down := prefs[0]
		if down == "a" {
			down = prefs[1]
		}
		c.net.Fail(down, errors.New("connection refused"))
		d, err := c.push(t, "a", data)
		c.net.Fail(down, nil)
		if err != nil {
			t.Fatalf("blob %d with %s down: %v", i, down, err)
		}
		var want []string
		for _, m := range prefs {
			if m != down && len(want) < 2 {
				want = append(want, m)
			}
		}
		slices.Sort(want)
		if got := c.holders(d); !slices.Equal(got, want) {
			t.Errorf("blob %d (preference %v, %s down) held by %v, want %v", i, prefs, down, got, want)
		}
	}
}

// TestPlaceUnavailable: with fewer members answering than Replicas, the
// commit fails with storage.ErrUnavailable and the committing member keeps
// its copy.
func TestPlaceUnavailable(t *testing.T) {
	c := newFakeCluster(t, 2, "a", "b", "c")
	c.net.Fail("b", errors.New("down"))
	c.net.Fail("c", errors.New("down"))
	d, err := c.push(t, "a", []byte("lonely layer"))
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("commit with every other member down: %v, want storage.ErrUnavailable", err)
	}
	if got := c.holders(d); !slices.Equal(got, []string{"a"}) {
		t.Errorf("held by %v, want a alone", got)
	}
}

// notOwnedBy returns a blob whose owners (Replicas of them) do not include
// member, and those owners.
func notOwnedBy(t *testing.T, c *fakeCluster, member string, replicas int) ([]byte, []string) {
	t.Helper()
	r := c.members[member].Ring()
	for i := range 1000 {
		data := []byte(fmt.Sprintf("surplus %d", i))
		if owners := r.Owners(digest.FromBytes(data), replicas); !slices.Contains(owners, member) {
			return data, owners
		}
	}
	t.Fatal("no blob the ring gives to other members")
	return nil, nil
}

// TestRebalanceDropsSurplusOnlyAfterEveryOwnerConfirmed: a member holding
// a blob it does not own copies it to the owners, and deletes its copy only
// when every owner confirmed theirs; while one owner fails, the copy stays.
func TestRebalanceDropsSurplusOnlyAfterEveryOwnerConfirmed(t *testing.T) {
	ctx := context.Background()
	c := newFakeCluster(t, 2, "a", "b", "c", "d")
	data, owners := notOwnedBy(t, c, "a", 2)
	d := c.stores["a"].Add(data)

	c.net.Fail(owners[1], errors.New("down"))
	if err := c.placers["a"].Rebalance(ctx, c.members["a"].Ring(), true); err == nil {
		t.Error("rebalance with an owner down reported no failure")
	}
	if got, want := c.holders(d), sorted("a", owners[0]); !slices.Equal(got, want) {
		t.Fatalf("with owner %s down: held by %v, want %v (the surplus copy kept)", owners[1], got, want)
	}

	c.net.Fail(owners[1], nil)
	if err := c.placers["a"].Rebalance(ctx, c.members["a"].Ring(), true); err != nil {
		t.Fatal(err)
	}
	if got, want := c.holders(d), sorted(owners...); !slices.Equal(got, want) {
		t.Errorf("after every owner confirmed: held by %v, want %v", got, want)
	}
}

// TestRebalanceKeepsWithoutDrop: a rebalance that must not drop (a
// hand-off) copies to the owners and keeps the copy here.
func TestRebalanceKeepsWithoutDrop(t *testing.T) {
	c := newFakeCluster(t, 1, "a", "b", "c")
	data, owners := notOwnedBy(t, c, "a", 1)
	d := c.stores["a"].Add(data)
	if err := c.placers["a"].Rebalance(context.Background(), c.members["a"].Ring(), false); err != nil {
		t.Fatal(err)
	}
	if got, want := c.holders(d), sorted("a", owners[0]); !slices.Equal(got, want) {
		t.Errorf("held by %v, want %v", got, want)
	}
}

// TestRebalanceSendsOnlyWhatOwnersLack: an owner that already holds a blob
// is not sent it again.
func TestRebalanceSendsOnlyWhatOwnersLack(t *testing.T) {
	c := newFakeCluster(t, 2, "a", "b", "c")
	var ds []digest.Digest
	for i := range 30 {
		data := []byte(fmt.Sprintf("everywhere %d", i))
		for _, s := range c.stores {
			ds = append(ds, s.Add(data))
		}
	}
	if err := c.placers["a"].Rebalance(context.Background(), c.members["a"].Ring(), true); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"b", "c"} {
		if n := c.net.Puts(m); n != 0 {
			t.Errorf("%s was sent %d blobs it held", m, n)
		}
	}
	for _, d := range ds {
		if got := c.holders(d); len(got) < 2 {
			t.Errorf("%s held by %v after rebalance, want at least its 2 owners", d, got)
		}
	}
}

// TestHandOff copies every held blob to the members that stay, deleting
// nothing, and is skipped when no member stays.
func TestHandOff(t *testing.T) {
	ctx := context.Background()
	t.Run("to the members that stay", func(t *testing.T) {
		c := newFakeCluster(t, 2, "a", "b", "c")
		c.members["a"].Leaving("c")
		var ds []digest.Digest
		for i := range 20 {
			ds = append(ds, c.stores["a"].Add([]byte(fmt.Sprintf("held %d", i))))
		}
		if err := c.placers["a"].HandOff(ctx); err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if got := c.holders(d); !slices.Equal(got, []string{"a", "b"}) {
				t.Errorf("%s held by %v, want a (nothing deleted) and b (the one that stays)", d, got)
			}
		}
		if n := c.net.Puts("c"); n != 0 {
			t.Errorf("c, which leaves too, was sent %d blobs", n)
		}
	})
	t.Run("skipped when no member stays", func(t *testing.T) {
		c := newFakeCluster(t, 2, "a", "b")
		c.members["a"].Leaving("b")
		d := c.stores["a"].Add([]byte("kept on disk"))
		if err := c.placers["a"].HandOff(ctx); err != nil {
			t.Fatal(err)
		}
		if n := c.net.Puts("b"); n != 0 {
			t.Errorf("b, which leaves too, was sent %d blobs", n)
		}
		if got := c.holders(d); !slices.Equal(got, []string{"a"}) {
			t.Errorf("held by %v, want a alone", got)
		}
	})
}

// TestPeerPutVerifies: a blob another member sends is stored only if its
// bytes hash to its digest and match its size.
func TestPeerPutVerifies(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore()
	pb := NewPeerBlobs("a", store)
	d := digest.FromString("the real bytes")
	if err := pb.Put(ctx, d, 9, strings.NewReader("forgeries")); !errors.Is(err, storage.ErrDigestMismatch) {
		t.Errorf("forged bytes: %v, want storage.ErrDigestMismatch", err)
	}
	if err := pb.Put(ctx, d, 20, strings.NewReader("the real bytes")); !errors.Is(err, storage.ErrDigestMismatch) {
		t.Errorf("short stream: %v, want storage.ErrDigestMismatch", err)
	}
	if has, err := pb.Has(ctx, []digest.Digest{d}); err != nil || has[0] {
		t.Fatalf("after refused puts: has %v, %v", has, err)
	}
	if err := pb.Put(ctx, d, 14, strings.NewReader("the real bytes")); err != nil {
		t.Fatal(err)
	}
	if has, err := pb.Has(ctx, []digest.Digest{d, digest.FromString("other")}); err != nil || !has[0] || has[1] {
		t.Errorf("has %v, %v; want [true false]", has, err)
	}
}

// TestKickRebalances: a kick makes the loop rebalance after the membership
// settles, moving a blob to the member that joined.
func TestKickRebalances(t *testing.T) {
	c := newFakeCluster(t, 1, "a", "b")
	data, owners := notOwnedBy(t, c, "a", 1)
	d := c.stores["a"].Add(data)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.placers["a"].Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	c.placers["a"].Kick()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(c.holders(d), owners) {
		if time.Now().After(deadline) {
			t.Fatalf("after a kick: held by %v, want %v", c.holders(d), owners)
		}
		<-time.After(time.Millisecond) // poll; the deadline bounds the wait
	}
}

func sorted(names ...string) []string {
	return slices.Sorted(slices.Values(names))
}
