package placement

import (
	"bytes"
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// holderNet is replicaNet with the reader each holder's replica reads
// wrapped, to make a holder slow or stall.
type holderNet struct {
	*replicaNet
	mu   sync.Mutex
	wrap map[string]func(ctx context.Context, r io.Reader) io.Reader
}

func (n *holderNet) AppendReplica(ctx context.Context, member, id string, state []byte, forward []string, r io.Reader) ([]byte, int64, error) {
	n.mu.Lock()
	wrap := n.wrap[member]
	n.mu.Unlock()
	if wrap != nil {
		r = wrap(ctx, r)
	}
	return n.replicaNet.AppendReplica(ctx, member, id, state, forward, r)
}

// newHolderCluster is a cluster of a, b and c with Replicas 3, whose
// placers use net.
func newHolderCluster(t *testing.T) (*fakeCluster, *holderNet) {
	t.Helper()
	c, rn := newReplicatingCluster(t, 3, "a", "b", "c")
	net := &holderNet{replicaNet: rn, wrap: map[string]func(context.Context, io.Reader) io.Reader{}}
	for _, p := range c.placers {
		p.deps.Transport = net
	}
	return c, net
}

// patterned returns n bytes that differ from chunk to chunk and within
// each, so a lost, repeated or reordered chunk changes the content.
func patterned(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/replicaChunk)
	}
	return b
}

// slowReader passes r on, waiting a little before each read, and records
// how many bytes went through.
type slowReader struct {
	r    io.Reader
	read *atomic.Int64
}

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(time.Millisecond) // slowness, not synchronisation
	n, err := s.r.Read(p[:min(len(p), 64<<10)])
	s.read.Add(int64(n))
	return n, err
}

// A holder that reads slowly holds the client back by at most its window:
// the client is never more than the window (plus the chunk being gathered
// and the one in the holder's hands) ahead of it, and the holder ends up
// with every byte in order.
func TestSlowHolderBackpressure(t *testing.T) {
	c, net := newHolderCluster(t)
	var read atomic.Int64
	net.wrap["b"] = func(_ context.Context, r io.Reader) io.Reader { return slowReader{r, &read} }
	data := patterned(2*replicaWindow*replicaChunk + 12345)
	d := digest.FromBytes(data)
	ctx := context.Background()
	w, err := c.placers["a"].Served().Writer(ctx, "a.slow", nil)
	if err != nil {
		t.Fatal(err)
	}
	bound := int64(replicaWindow+2) * replicaChunk
	var written, lead int64
	for rest := data; len(rest) > 0; {
		k := min(len(rest), 100<<10)
		if _, err := w.Write(rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest, written = rest[k:], written+int64(k)
		lead = max(lead, written-read.Load())
	}
	if lead > bound {
		t.Errorf("the client got %d bytes ahead of the slow holder, want at most %d", lead, bound)
	}
	if err := w.Commit(ctx, d); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"a", "b", "c"} {
		if got, ok := c.stores[m].blob(d); !ok || !bytes.Equal(got, data) {
			t.Errorf("%s holds the blob: %v, bytes equal: %v", m, ok, bytes.Equal(got, data))
		}
	}
	for name := range c.stores {
		if n := c.net.Puts(name); n != 0 {
			t.Errorf("the commit copied %d blobs to %s", n, name)
		}
	}
}

// A holder that stops taking bytes and is no longer live is dropped after
// the stall limit: the client's writes go on, and the commit still leaves
// Replicas copies (Place copies the blob to the member left).
func TestStalledHolderDropped(t *testing.T) {
	c, net := newHolderCluster(t)
	for _, p := range c.placers {
		p.limits = replicaLimits{stall: 100 * time.Millisecond, durable: time.Minute}
		p.cfg.Replicas = 2
	}
	ctx := context.Background()
	id := "a.stalls"
	holder := c.placers["a"].holders(id)[0]
	stalled := make(chan struct{})
	var once sync.Once
	net.wrap[holder] = func(ctx context.Context, _ io.Reader) io.Reader {
		return readerFunc(func([]byte) (int, error) {
			once.Do(func() { close(stalled) })
			<-ctx.Done() // takes nothing until its stream is aborted
			return 0, ctx.Err()
		})
	}
	c.members["a"].SetLive("a", "b", "c")
	data := patterned(2*replicaWindow*replicaChunk + 777)
	d := digest.FromBytes(data)
	w, err := c.placers["a"].Served().Writer(ctx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := w.Write(data)
		done <- err
	}()
	<-stalled
	c.members["a"].SetLive("a", other(holder))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the client's write still waits for a stalled holder that is gone")
	}
	if err := w.Commit(ctx, d); err != nil {
		t.Fatalf("commit with %s stalled: %v", holder, err)
	}
	keep := other(holder)
	for _, m := range []string{"a", keep} {
		if got, ok := c.stores[m].blob(d); !ok || !bytes.Equal(got, data) {
			t.Errorf("%s holds the blob: %v, bytes equal: %v", m, ok, bytes.Equal(got, data))
		}
	}
	if c.stores[holder].Holds(d) {
		t.Errorf("the stalled holder %s committed the blob", holder)
	}
}

// other returns the member of b and c that is not m.
func other(m string) string {
	if m == "b" {
		return "c"
	}
	return "b"
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// blob returns the bytes of blob d if the store holds it.
func (m *MemoryStore) blob(d digest.Digest) ([]byte, bool) {
	b, err := m.Open(context.Background(), d)
	if err != nil {
		return nil, false
	}
	defer b.Close()
	data, err := io.ReadAll(b)
	return data, err == nil
}
