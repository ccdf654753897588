package placement

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// Tests of the chain a blob whose digest is known from the start takes
// through a member that is not one of its owners (replicate.go,
// replicas.go): the member streams to the first owner, which passes the
// bytes on.

// chainBlob returns size bytes whose blob member does not own, and the
// blob's owners in the ring's order (the chain's).
func chainBlob(t *testing.T, c *fakeCluster, member string, replicas, size int) ([]byte, []string) {
	t.Helper()
	data := patterned(size)
	r := c.members[member].Ring()
	for i := range 1000 {
		copy(data, fmt.Sprintf("layer %d", i))
		if owners := r.Owners(digest.FromBytes(data), replicas); !slices.Contains(owners, member) {
			return data, slices.Clone(owners)
		}
	}
	t.Fatal("no blob the ring gives to other members")
	return nil, nil
}

// pushKnown uploads data through member's served store as a blob whose
// digest d is known from the start (POST ?digest=), in two writes with the
// state taken between them, and commits it as d.
func pushKnown(t *testing.T, c *fakeCluster, member, id string, data []byte, d digest.Digest) error {
	t.Helper()
	ctx := context.Background()
	kw, ok := c.placers[member].Served().(interface {
		WriterFor(ctx context.Context, id string, d digest.Digest) (storage.BlobWriter, error)
	})
	if !ok {
		t.Fatal("the served store opens no upload of a known digest")
	}
	w, err := kw.WriterFor(ctx, id, d)
	if err != nil {
		t.Fatal(err)
	}
	half := len(data) / 2
	if _, err := w.Write(data[:half]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.State(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[half:]); err != nil {
		t.Fatal(err)
	}
	return w.Commit(ctx, d)
}

// waitUploads waits until none of members keeps an upload: replicas are
// discarded in the background after a failure.
func waitUploads(t *testing.T, c *fakeCluster, members ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, m := range members {
		for c.stores[m].uploadCount() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s keeps %d uploads", m, c.stores[m].uploadCount())
			}
			<-time.After(time.Millisecond) // poll; the deadline bounds the wait
		}
	}
}

// A known-digest upload through a member that owns none of its blob
// reaches every owner while that member sends each byte once: to the first
// owner, which passes it on to the next. Nothing is copied at the commit,
// and nothing is left behind.
func TestKnownDigestChainSendsEachByteOnce(t *testing.T) {
	for _, tc := range []struct {
		replicas int
		members  []string
	}{
		{2, []string{"a", "b", "c", "d"}},
		{3, []string{"a", "b", "c", "d", "e"}},
	} {
		t.Run(fmt.Sprintf("R=%d", tc.replicas), func(t *testing.T) {
			c, net := newReplicatingCluster(t, tc.replicas, tc.members...)
			size := 3*replicaChunk + 4321
			data, owners := chainBlob(t, c, "a", tc.replicas, size)
			d := digest.FromBytes(data)
			if err := pushKnown(t, c, "a", "a.mono", data, d); err != nil {
				t.Fatalf("commit: %v", err)
			}
			if got, want := c.holders(d), slices.Sorted(slices.Values(owners)); !slices.Equal(got, want) {
				t.Errorf("held by %v, want its owners %v", got, want)
			}
			// The entry and every owner but the last send the blob once.
			for _, m := range append([]string{"a"}, owners[:len(owners)-1]...) {
				if n := net.sentBy(m); n != int64(size) {
					t.Errorf("%s sent %d bytes to replicas, want %d (the blob once)", m, n, size)
				}
			}
			if n := net.sentBy(owners[len(owners)-1]); n != 0 {
				t.Errorf("the chain's tail %s sent %d bytes", owners[len(owners)-1], n)
			}
			for name, s := range c.stores {
				if n := c.net.Puts(name); n != 0 {
					t.Errorf("the commit copied %d blobs to %s", n, name)
				}
				if n := s.uploadCount(); n != 0 {
					t.Errorf("%s keeps %d uploads", name, n)
				}
			}
		})
	}
}

// dyingNet is a member's transport on which victim dies after taking
// after bytes of a replica: its stream breaks and every later call to it
// fails, as a member killed mid-upload.
type dyingNet struct {
	sender
	victim string
	after  int64
	once   *sync.Once
}

func (n dyingNet) AppendReplica(ctx context.Context, member, id string, state []byte, forward []string, r io.Reader) ([]byte, int64, error) {
	if member == n.victim {
		r = &dyingReader{r: r, left: n.after, die: func() { n.once.Do(func() { n.setDown(n.victim, true) }) }}
	}
	return n.sender.AppendReplica(ctx, member, id, state, forward, r)
}

// dyingReader passes left bytes of r on, then dies.
type dyingReader struct {
	r    io.Reader
	left int64
	die  func()
}

var errKilled = errors.New("member killed")

func (d *dyingReader) Read(p []byte) (int, error) {
	if d.left <= 0 {
		d.die()
		return 0, errKilled
	}
	n, err := d.r.Read(p[:min(int64(len(p)), d.left)])
	d.left -= int64(n)
	return n, err
}

// A chain's head or tail killed in the middle of the stream still ends in
// a 201 with Replicas copies on live members (Place takes over where the
// chain broke: the entry's when the head died, the head's when the tail
// did), and no live member keeps an upload.
func TestKnownDigestChainMemberDies(t *testing.T) {
	for _, victim := range []int{0, 1} { // the head, the tail
		t.Run([]string{"head", "tail"}[victim], func(t *testing.T) {
			c, net := newReplicatingCluster(t, 2, "a", "b", "c", "d")
			size := 4*replicaChunk + 99
			data, owners := chainBlob(t, c, "a", 2, size)
			once := &sync.Once{}
			for name, p := range c.placers {
				p.deps.Transport = dyingNet{sender{net, name}, owners[victim], 2 * replicaChunk, once}
			}
			d := digest.FromBytes(data)
			if err := pushKnown(t, c, "a", "a.dies", data, d); err != nil {
				t.Fatalf("commit with %s killed mid-stream: %v", owners[victim], err)
			}
			got := c.holders(d)
			if len(got) != 2 || slices.Contains(got, owners[victim]) {
				t.Errorf("held by %v with %s dead, want 2 live members", got, owners[victim])
			}
			// With the head alive, it places the blob past the dead tail
			// itself: the entry sent the bytes once, and nothing more.
			if n := net.sentBy("a"); victim == 1 && n != int64(size) {
				t.Errorf("the entry sent %d bytes with the tail dead, want %d (the blob once)", n, size)
			}
			var live []string
			for name := range c.stores {
				if name != owners[victim] {
					live = append(live, name)
				}
			}
			waitUploads(t, c, live...)
		})
	}
}

// A known-digest upload whose bytes do not hash to the digest leaves
// nothing on any member: the chain's head discards what it passed on.
func TestKnownDigestChainMismatch(t *testing.T) {
	c, _ := newReplicatingCluster(t, 2, "a", "b", "c", "d")
	data, _ := chainBlob(t, c, "a", 2, 2*replicaChunk+5)
	wrong := digest.FromString("something else")
	if err := pushKnown(t, c, "a", "a.wrong", data, wrong); !errors.Is(err, storage.ErrDigestMismatch) {
		t.Fatalf("commit with a wrong digest: %v, want ErrDigestMismatch", err)
	}
	for name, s := range c.stores {
		if n, _ := s.Usage(); n != 0 {
			t.Errorf("%s holds %d blobs", name, n)
		}
		if n := s.uploadCount(); n != 0 {
			t.Errorf("%s keeps %d uploads", name, n)
		}
	}
}

// oldNet makes member old answer as a member that predates chains: it
// ignores forward and counts its own copy only.
type oldNet struct {
	sender
	old string
}

func (n oldNet) AppendReplica(ctx context.Context, member, id string, state []byte, forward []string, r io.Reader) ([]byte, int64, error) {
	if member == n.old {
		forward = nil
	}
	return n.sender.AppendReplica(ctx, member, id, state, forward, r)
}

func (n oldNet) FinishReplica(ctx context.Context, member, id string, state []byte, d digest.Digest) (int, error) {
	copies, err := n.sender.FinishReplica(ctx, member, id, state, d)
	if member == n.old && err == nil {
		copies = 1
	}
	return copies, err
}

// A chain whose head predates chains (a rolling upgrade) keeps only its
// own copy; the entry hears one copy from its commit and copies the blob
// on, so the 201 still means Replicas copies.
func TestKnownDigestChainOldHead(t *testing.T) {
	c, net := newReplicatingCluster(t, 2, "a", "b", "c", "d")
	data, owners := chainBlob(t, c, "a", 2, 2*replicaChunk+7)
	for name, p := range c.placers {
		p.deps.Transport = oldNet{sender{net, name}, owners[0]}
	}
	d := digest.FromBytes(data)
	if err := pushKnown(t, c, "a", "a.old", data, d); err != nil {
		t.Fatalf("commit through an old head: %v", err)
	}
	if got, want := c.holders(d), slices.Sorted(slices.Values(owners)); !slices.Equal(got, want) {
		t.Errorf("held by %v, want its owners %v", got, want)
	}
	for name, s := range c.stores {
		if n := s.uploadCount(); n != 0 {
			t.Errorf("%s keeps %d uploads", name, n)
		}
	}
}
