package placement

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/peer"
	"github.com/atollhq/atoll/storage"
)

// replicaNet is the fake transport with replicas of uploads: the calls
// go straight to each member's PeerBlobs, and a member marked down fails
// them. Each member's placer reaches it through a sender, which counts the
// bytes that member streams to replicas.
type replicaNet struct {
	*peer.FakeBlobTransport
	mu    sync.Mutex
	peers map[string]PeerBlobs
	down  map[string]bool
	sent  map[string]*atomic.Int64 // by sending member
}

// sender is the transport of one member: it counts the bytes that member
// sends to replicas and as blobs.
type sender struct {
	*replicaNet
	from string
}

func (s sender) AppendReplica(ctx context.Context, member, id string, state []byte, forward []string, r io.Reader) ([]byte, int64, error) {
	return s.replicaNet.AppendReplica(ctx, member, id, state, forward, countingReader{r, s.sent[s.from]})
}

func (s sender) PutBlob(ctx context.Context, member string, d digest.Digest, size int64, r io.Reader) error {
	return s.replicaNet.PutBlob(ctx, member, d, size, countingReader{r, s.sent[s.from]})
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// sentBy returns how many bytes member sent to replicas and as blobs.
func (n *replicaNet) sentBy(member string) int64 { return n.sent[member].Load() }

func (n *replicaNet) peer(member string) (PeerBlobs, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down[member] {
		return PeerBlobs{}, fmt.Errorf("peer %s: %w", member, peer.ErrUnreachable)
	}
	return n.peers[member], nil
}

func (n *replicaNet) setDown(member string, down bool) {
	n.mu.Lock()
	n.down[member] = down
	n.mu.Unlock()
	var err error
	if down {
		err = errors.New("down")
	}
	n.Fail(member, err)
}

func (n *replicaNet) AppendReplica(ctx context.Context, member, id string, state []byte, forward []string, r io.Reader) ([]byte, int64, error) {
	pb, err := n.peer(member)
	if err != nil {
		return nil, 0, err
	}
	return pb.AppendReplica(ctx, id, state, forward, r)
}

func (n *replicaNet) FinishReplica(ctx context.Context, member, id string, state []byte, d digest.Digest) (int, error) {
	pb, err := n.peer(member)
	if err != nil {
		return 0, err
	}
	return pb.FinishReplica(ctx, id, state, d)
}

// newReplicatingCluster is newFakeCluster over a transport with replicas.
func newReplicatingCluster(t *testing.T, replicas int, names ...string) (*fakeCluster, *replicaNet) {
	t.Helper()
	net := &replicaNet{FakeBlobTransport: peer.NewFakeBlobTransport(), peers: map[string]PeerBlobs{},
		down: map[string]bool{}, sent: map[string]*atomic.Int64{}}
	c := &fakeCluster{net: net.FakeBlobTransport, stores: map[string]*MemoryStore{},
		members: map[string]*FakeMembers{}, placers: map[string]*Placer{}}
	for _, name := range names {
		store := NewMemoryStore()
		pb := NewPeerBlobs(name, store)
		members := NewFakeMembers(name, names...)
		net.sent[name] = &atomic.Int64{}
		p, err := New(Config{Replicas: replicas, Settle: time.Millisecond},
			Deps{Self: name, Local: store, Transport: sender{net, name}, Members: members, Peer: pb})
		if err != nil {
			t.Fatal(err)
		}
		net.Add(name, pb)
		net.peers[name] = pb
		c.stores[name], c.members[name], c.placers[name] = store, members, p
	}
	return c, net
}

// uploadInTwo writes data through member's served store as a client's
// session in two PATCHes (each resumed from the state the last recorded),
// then commits it as digest d, or cancels it when d is "". between runs
// after the first PATCH.
func uploadInTwo(t *testing.T, c *fakeCluster, member, id string, data []byte, d digest.Digest, between func()) error {
	t.Helper()
	ctx := context.Background()
	served := c.placers[member].Served()
	half := len(data) / 2
	w, err := served.Writer(ctx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[:half]); err != nil {
		t.Fatal(err)
	}
	state, err := w.State()
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	between()
	if w, err = served.Writer(ctx, id, state); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[half:]); err != nil {
		t.Fatal(err)
	}
	if d == "" {
		return w.Cancel(ctx)
	}
	return w.Commit(ctx, d)
}

// The bytes of a session reach its other holder as they are written: the
// commit copies nothing (no Put to any member) and leaves the blob on the
// session's member and its holder; a rebalance then moves the copies to
// the ring's owners.
func TestReplicateWhileReceiving(t *testing.T) {
	c, _ := newReplicatingCluster(t, 2, "a", "b", "c", "d")
	for i := range 12 {
		data := []byte(fmt.Sprintf("chunked layer %d, replicated as it arrives", i))
		d, id := digest.FromBytes(data), fmt.Sprintf("a.session%d", i)
		holder := c.placers["a"].holders(id)
		if len(holder) != 1 || holder[0] == "a" {
			t.Fatalf("holders of %s: %v", id, holder)
		}
		replica := func() {
			if n := c.stores[holder[0]].uploadSize(replicaPrefix + id); n != int64(len(data)/2) {
				t.Errorf("after the first PATCH the replica on %s holds %d bytes, want %d", holder[0], n, len(data)/2)
			}
		}
		if err := uploadInTwo(t, c, "a", id, data, d, replica); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		want := []string{"a", holder[0]}
		slices.Sort(want)
		if got := c.holders(d); !slices.Equal(got, want) {
			t.Errorf("blob %d held by %v right after the commit, want %v", i, got, want)
		}
		for name := range c.stores {
			if n := c.net.Puts(name); n != 0 {
				t.Errorf("the commit copied %d blobs to %s", n, name)
			}
		}
	}
	ctx := context.Background()
	for name, p := range c.placers {
		if err := p.Rebalance(ctx, c.members[name].Ring(), true); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 12 {
		data := []byte(fmt.Sprintf("chunked layer %d, replicated as it arrives", i))
		d := digest.FromBytes(data)
		r := c.members["a"].Ring()
		owners := slices.Clone(r.Owners(d, 2))
		slices.Sort(owners)
		if got := c.holders(d); !slices.Equal(got, owners) {
			t.Errorf("blob %d held by %v after rebalancing, want its owners %v", i, got, owners)
		}
	}
	for name, s := range c.stores {
		if n := s.uploadCount(); n != 0 {
			t.Errorf("%s keeps %d uploads", name, n)
		}
	}
}

// A holder that goes down during the session is dropped, and the commit
// still leaves Replicas copies: it copies the blob to the next members.
func TestReplicaHolderDownFallsBackToPlace(t *testing.T) {
	c, net := newReplicatingCluster(t, 2, "a", "b", "c")
	data := []byte("a layer whose holder dies")
	d, id := digest.FromBytes(data), "a.dies"
	holder := c.placers["a"].holders(id)[0]
	if err := uploadInTwo(t, c, "a", id, data, d, func() { net.setDown(holder, true) }); err != nil {
		t.Fatalf("commit with %s down: %v", holder, err)
	}
	if got := c.holders(d); len(got) != 2 || slices.Contains(got, holder) {
		t.Errorf("held by %v with %s down, want 2 live members", got, holder)
	}
}

// A digest that does not match stores nothing anywhere, and a cancelled
// session leaves no replica.
func TestReplicaMismatchAndCancel(t *testing.T) {
	c, _ := newReplicatingCluster(t, 2, "a", "b", "c")
	data := []byte("a layer pushed with the wrong digest")
	wrong := digest.FromString("something else")
	if err := uploadInTwo(t, c, "a", "a.wrong", data, wrong, func() {}); !errors.Is(err, storage.ErrDigestMismatch) {
		t.Fatalf("commit with a wrong digest: %v, want ErrDigestMismatch", err)
	}
	if err := uploadInTwo(t, c, "a", "a.cancel", data, "", func() {}); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	for name, s := range c.stores {
		if got := c.holders(digest.FromBytes(data)); len(got) != 0 {
			t.Errorf("blob held by %v", got)
		}
		if n := s.uploadCount(); n != 0 {
			t.Errorf("%s keeps %d uploads", name, n)
		}
	}
}

// uploadSize returns how many bytes upload id holds, -1 if none.
func (m *MemoryStore) uploadSize(id string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.uploads[id]
	if !ok {
		return -1
	}
	return int64(len(u.data))
}

// uploadCount returns how many uploads the store holds.
func (m *MemoryStore) uploadCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.uploads)
}

// A blob whose digest is known from the start goes straight to its owners
// as it is written: right after the commit it is on them and nowhere else,
// and nothing was copied.
func TestKnownDigestGoesToOwners(t *testing.T) {
	c, _ := newReplicatingCluster(t, 2, "a", "b", "c", "d")
	ctx := context.Background()
	type knownDigestWriter interface {
		WriterFor(ctx context.Context, id string, d digest.Digest) (storage.BlobWriter, error)
	}
	kw, ok := c.placers["a"].Served().(knownDigestWriter)
	if !ok {
		t.Fatal("the served store opens no upload of a known digest")
	}
	r := c.members["a"].Ring()
	for i := range 12 {
		data := []byte(fmt.Sprintf("monolithic layer %d", i))
		d := digest.FromBytes(data)
		w, err := kw.WriterFor(ctx, fmt.Sprintf("a.mono%d", i), d)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx, d); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		owners := slices.Clone(r.Owners(d, 2))
		slices.Sort(owners)
		if got := c.holders(d); !slices.Equal(got, owners) {
			t.Errorf("blob %d held by %v, want its owners %v", i, got, owners)
		}
	}
	for name, s := range c.stores {
		if n := c.net.Puts(name); n != 0 {
			t.Errorf("%d blobs copied to %s", n, name)
		}
		if n := s.uploadCount(); n != 0 {
			t.Errorf("%s keeps %d uploads", name, n)
		}
	}
}
