package route

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// frozenMember is a member that answers a blob read with its headers and
// the first sent bytes of a body of size bytes, then sends nothing more. Its
// connections end only when the reading member closes them (closed
// receives one value per connection that ended so).
type frozenMember struct {
	ln     net.Listener
	size   int
	sent   int
	closed chan struct{}
	mu     sync.Mutex
	conns  []net.Conn
}

func newFrozenMember(t *testing.T, size, sent int) *frozenMember {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &frozenMember{ln: ln, size: size, sent: sent, closed: make(chan struct{}, 16)}
	t.Cleanup(m.release)
	go m.serve()
	return m
}

// release closes the listener and every connection, so that a test
// that failed does not hang on them.
func (m *frozenMember) release() {
	_ = m.ln.Close()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.conns {
		_ = c.Close()
	}
}

func (m *frozenMember) serve() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		m.mu.Lock()
		m.conns = append(m.conns, c)
		m.mu.Unlock()
		go m.answer(c)
	}
}

func (m *frozenMember) answer(c net.Conn) {
	defer c.Close()
	if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
		return
	}
	_, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", m.size)
	if err == nil {
		_, err = c.Write(make([]byte, m.sent))
	}
	if err != nil {
		return
	}
	// Frozen: the next read ends only when the other side closes.
	_, _ = io.Copy(io.Discard, c)
	m.closed <- struct{}{}
}

// TestFrozenMemberCutsTheBody has a member freeze in the middle of a
// proxied body, answered to a recorder and by a real HTTP/1 server.
// Within ProxyIdle of the last byte the client's answer ends short, and
// the member's connection is closed, not pooled.
func TestFrozenMemberCutsTheBody(t *testing.T) {
	const size, sent, idle = 8 << 20, 256 << 10, 200 * time.Millisecond
	d := digest.FromString("frozen")
	newFront := func(t *testing.T) (*Router, *frozenMember) {
		m := newFrozenMember(t, size, sent)
		members := &fakeMembers{order: []string{"owner-7", "front-1"}, addrs: map[string]string{"owner-7": m.ln.Addr().String()}}
		return New(Config{Self: "front-1", Secret: secret, ProxyIdle: idle}, Deps{Members: members, Blobs: memBlobs{}}), m
	}
	// within fails the test unless done is closed in time.
	within := func(t *testing.T, done <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: still waiting after 10s", what)
		}
	}
	checkClosed := func(t *testing.T, front *Router, m *frozenMember) {
		t.Helper()
		done := make(chan struct{})
		go func() { <-m.closed; close(done) }()
		within(t, done, "the member's connection closed")
		front.conns.mu.Lock()
		defer front.conns.mu.Unlock()
		if n := len(front.conns.idle[m.ln.Addr().String()]); n != 0 {
			t.Errorf("%d connection(s) to the frozen member pooled, want 0", n)
		}
	}

	t.Run("recorded", func(t *testing.T) {
		front, m := newFront(t)
		w := &countingWriter{ResponseWriter: httptest.NewRecorder(), status: http.StatusOK}
		r := httptest.NewRequest(http.MethodGet, "/v2/team/app/blobs/"+d.String(), nil)
		done := make(chan struct{})
		var err error
		go func() { err = front.ServeBlob(w, r, d); close(done) }()
		within(t, done, "ServeBlob")
		if err != nil {
			t.Fatal(err)
		}
		if w.status != http.StatusOK || w.n != sent {
			t.Errorf("middleware saw %d and %d bytes, want 200 and the %d sent", w.status, w.n, sent)
		}
		checkClosed(t, front, m)
	})

	t.Run("served", func(t *testing.T) {
		front, m := newFront(t)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := front.ServeBlob(w, r, d); err != nil {
				t.Error(err)
			}
		}))
		t.Cleanup(func() { m.release(); srv.Close() }) // the member first: Close waits for the handler
		done := make(chan struct{})
		var n int64
		var err error
		go func() {
			defer close(done)
			resp, gerr := http.Get(srv.URL + "/v2/team/app/blobs/" + d.String())
			if gerr != nil {
				err = gerr
				return
			}
			defer resp.Body.Close()
			n, err = io.Copy(io.Discard, resp.Body)
		}()
		within(t, done, "the client's GET")
		if !errors.Is(err, io.ErrUnexpectedEOF) || n != sent {
			t.Errorf("client read %d bytes, then %v; want the %d sent, then %v", n, err, sent, io.ErrUnexpectedEOF)
		}
		checkClosed(t, front, m)
	})
}
