package peer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metalog"
)

// memMetadata is an in-memory Metadata: one log per origin.
type memMetadata struct {
	mu   sync.Mutex
	logs map[string][]metalog.Batch
}

func newMemMetadata() *memMetadata { return &memMetadata{logs: make(map[string][]metalog.Batch)} }

func (m *memMetadata) Apply(_ context.Context, bs []metalog.Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range bs {
		if log := m.logs[b.Origin]; b.Seq == uint64(len(log))+1 {
			m.logs[b.Origin] = append(log, b)
		}
	}
	return nil
}

func (m *memMetadata) Vector() metalog.Vector {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := make(metalog.Vector)
	for origin, log := range m.logs {
		v[origin] = uint64(len(log))
	}
	return v
}

// panicOrigin is an origin whose log Since panics on, as a corrupt page
// of a real store's file makes bbolt panic.
const panicOrigin = "panic"

func (m *memMetadata) Since(origin string, seq uint64, limit int) ([]metalog.Batch, error) {
	if origin == panicOrigin {
		panic("page 7 expected to be a leaf")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	log := m.logs[origin]
	if seq >= uint64(len(log)) {
		return nil, nil
	}
	end := min(uint64(len(log)), seq+uint64(limit))
	return append([]metalog.Batch(nil), log[seq:end]...), nil
}

// memBlobs is an in-memory Blobs that verifies digests like a real store.
type memBlobs struct {
	mu       sync.Mutex
	blobs    map[digest.Digest][]byte
	replicas map[string]*memReplica
	// copies is what FinishReplica answers: 0 as a member from before
	// chains does.
	copies int
}

func newMemBlobs() *memBlobs { return &memBlobs{blobs: make(map[digest.Digest][]byte)} }

func (m *memBlobs) Has(_ context.Context, ds []digest.Digest) ([]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]bool, len(ds))
	for i, d := range ds {
		_, out[i] = m.blobs[d]
	}
	return out, nil
}

func (m *memBlobs) Put(_ context.Context, d digest.Digest, size int64, r io.Reader) error {
	v := d.Verifier()
	var buf bytes.Buffer
	if _, err := io.Copy(io.MultiWriter(&buf, v), r); err != nil {
		return fmt.Errorf("fake store: %w", err)
	}
	if int64(buf.Len()) != size || !v.Verified() {
		return fmt.Errorf("fake store: %s: %w", d, storage.ErrDigestMismatch)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blobs[d] = buf.Bytes()
	return nil
}

// memReplica is a replica a memBlobs keeps: its bytes and the members it
// was asked to forward them to.
type memReplica struct {
	data    []byte
	forward []string
}

// AppendReplica implements Replicas: it records the bytes and forward.
func (m *memBlobs) AppendReplica(_ context.Context, id string, state []byte, forward []string, r io.Reader) ([]byte, int64, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, 0, fmt.Errorf("fake store: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.replicas == nil {
		m.replicas = map[string]*memReplica{}
	}
	rep, ok := m.replicas[id]
	if !ok || state == nil {
		rep = &memReplica{forward: forward}
		m.replicas[id] = rep
	}
	rep.data = append(rep.data, data...)
	return []byte(id), int64(len(rep.data)), nil
}

// FinishReplica implements Replicas: it commits replica id and answers
// m.copies.
func (m *memBlobs) FinishReplica(_ context.Context, id string, _ []byte, d digest.Digest) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rep, ok := m.replicas[id]
	if !ok {
		return 0, fmt.Errorf("fake store: replica %s: %w", id, storage.ErrUploadUnknown)
	}
	delete(m.replicas, id)
	if d == "" {
		return 0, nil
	}
	if digest.FromBytes(rep.data) != d {
		return 0, fmt.Errorf("fake store: replica %s: %w", id, storage.ErrDigestMismatch)
	}
	m.blobs[d] = rep.data
	return m.copies, nil
}

// replica returns replica id, if kept.
func (m *memBlobs) replica(id string) (memReplica, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rep, ok := m.replicas[id]
	if !ok {
		return memReplica{}, false
	}
	return *rep, true
}

// get returns the bytes of blob d, if held.
func (m *memBlobs) get(d digest.Digest) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[d]
	return b, ok
}

// countEvents counts MembershipChanged calls.
type countEvents struct{ n atomic.Int64 }

func (e *countEvents) MembershipChanged() { e.n.Add(1) }

// testLogger logs to the test's output until the test ends; memberlist
// goroutines may outlive it by a moment.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{w: t.Output()}
	t.Cleanup(func() { // registered first, so it runs last
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	mu   sync.Mutex
	w    io.Writer
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	return w.w.Write(p)
}

// freePort returns a port free for both TCP and UDP on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// member is a test member and its handlers.
type member struct {
	*Cluster
	md     *memMetadata
	blobs  *memBlobs
	events *countEvents
	gossip string // 127.0.0.1:port
	http   string
}

// newMember creates (but does not start) member name gossiping on port,
// with fast timings and in-memory handlers; edit adjusts the config.
func newMember(t *testing.T, log *slog.Logger, name string, port int, edit func(*Config)) *member {
	t.Helper()
	m := &member{
		md:     newMemMetadata(),
		blobs:  newMemBlobs(),
		events: &countEvents{},
		gossip: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		http:   "127.0.0.1:" + strconv.Itoa(5000+port%1000),
	}
	cfg := Config{
		NodeName:   name,
		GossipAddr: m.gossip,
		GRPCAddr:   "127.0.0.1:0",
		HTTPAddr:   m.http,
		Fast:       true,
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := New(cfg, Deps{Metadata: m.md, Blobs: m.blobs, Events: m.events, Logger: log.With("self", name)})
	if err != nil {
		t.Fatalf("New %s: %v", name, err)
	}
	m.Cluster = c
	t.Cleanup(func() { c.Close() })
	return m
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// memberState returns the state of member name as seen by c, or "".
func memberState(c *Cluster, name string) string {
	for _, m := range c.Members() {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

// noFalseDeaths is how often the members of a pair probe each other: about
// once a day, so neither declares the other dead while a test runs. The
// tests of a pair test its calls, not the failure detector (membership
// tests do); with Fast's timings (a 100 ms probe timeout, 600 ms of
// suspicion) a test process starved of CPU for 600 ms, as on a loaded
// 2-core CI machine under -race, declared its live peer dead and closed the
// connection under the call (TestMetadataRoundTrip: "member is not alive:
// dead", "the client connection is closing").
const noFalseDeaths = 24 * time.Hour

// joinPair creates and starts two members, b joining a, and waits until
// each sees the other. They do not probe each other (noFalseDeaths).
func joinPair(t *testing.T, edit func(*Config)) (a, b *member) {
	t.Helper()
	log := testLogger(t)
	a = newMember(t, log, "a", freePort(t), func(c *Config) {
		c.ProbeInterval = noFalseDeaths
		if edit != nil {
			edit(c)
		}
	})
	a.Start()
	b = newMember(t, log, "b", freePort(t), func(c *Config) {
		c.Join = []string{a.gossip}
		c.ProbeInterval = noFalseDeaths
		if edit != nil {
			edit(c)
		}
	})
	b.Start()
	waitFor(t, 10*time.Second, "a and b to see each other", func() bool {
		return memberState(a.Cluster, "b") == StateAlive && memberState(b.Cluster, "a") == StateAlive
	})
	return a, b
}
