package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
)

// hook is a webhook receiver that records the events it accepts.
type hook struct {
	t       *testing.T
	srv     *httptest.Server
	failN   atomic.Int32  // requests still to answer 503
	down    atomic.Bool   // answer every request 503
	hang    atomic.Bool   // hold every request until the client gives up
	entered chan struct{} // signalled when a request starts hanging

	mu      sync.Mutex
	events  []api.Event
	batches []int // events per accepted request
	methods []string
	headers []http.Header
	bodies  [][]byte
}

func newHook(t *testing.T) *hook {
	h := &hook{t: t, entered: make(chan struct{}, 1)}
	h.srv = httptest.NewServer(h)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if h.hang.Load() {
		select {
		case h.entered <- struct{}{}:
		default:
		}
		<-r.Context().Done()
		return
	}
	if h.down.Load() || h.failN.Add(-1) >= 0 {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	var env struct {
		Events []api.Event `json:"events"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		h.t.Errorf("hook: decode envelope: %v\n%s", err, body)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.events = append(h.events, env.Events...)
	h.batches = append(h.batches, len(env.Events))
	h.methods = append(h.methods, r.Method)
	h.headers = append(h.headers, r.Header.Clone())
	h.bodies = append(h.bodies, body)
	h.mu.Unlock()
}

// received returns the ids of the events accepted so far, in order.
func (h *hook) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make([]string, len(h.events))
	for i, e := range h.events {
		ids[i] = e.ID
	}
	return ids
}

// endpoint names an endpoint posting to h, with a test-sized backoff.
func (h *hook) endpoint(name string) Endpoint {
	return Endpoint{Name: name, URL: h.srv.URL, Timeout: 5 * time.Second, Backoff: 5 * time.Millisecond}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// open returns a Notifier over dir, closed when the test ends.
func open(t *testing.T, cfg Config, dir string) *Notifier {
	t.Helper()
	n, err := New(cfg, dir, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// run runs n until the returned stop is called or the test ends.
func run(t *testing.T, n *Notifier) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// event returns the i-th test event.
func event(i int, action, mediaType string) api.Event {
	d := digest.FromString(fmt.Sprint(i))
	return api.Event{
		ID:        fmt.Sprintf("ev-%03d", i),
		Timestamp: time.Date(2026, 1, 2, 3, 4, 5, i, time.UTC),
		Action:    action,
		Target: api.EventTarget{
			MediaType:  mediaType,
			Digest:     d,
			Size:       int64(100 + i),
			Repository: "library/alpine",
			URL:        "/v2/library/alpine/manifests/" + d.String(),
			Tag:        "latest",
		},
		Request: api.EventRequest{ID: fmt.Sprintf("req-%d", i), Addr: "10.0.0.7", Host: "registry.example:5000",
			Method: http.MethodPut, UserAgent: "docker/27.0"},
		Actor: api.EventActor{Name: "alice"},
	}
}

const manifestType = "application/vnd.oci.image.manifest.v1+json"

// emit emits events first..last (pushes of a manifest) and returns their ids.
func emit(n *Notifier, first, last int) []string {
	var ids []string
	for i := first; i <= last; i++ {
		e := event(i, api.ActionPush, manifestType)
		n.Emit(context.Background(), e)
		ids = append(ids, e.ID)
	}
	return ids
}

// newStatusServer answers every request with status and returns its URL.
func newStatusServer(t *testing.T, status int) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
