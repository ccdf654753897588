package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/atollhq/atoll/api"
)

func TestDeliversEnvelopeWithHeaders(t *testing.T) {
	h := newHook(t)
	ep := h.endpoint("hook")
	ep.Headers = http.Header{"Authorization": {"Bearer s3cret"}, "X-Multi": {"one", "two"}}
	n := open(t, Config{Endpoints: []Endpoint{ep}}, t.TempDir())
	run(t, n)

	want := []api.Event{event(1, api.ActionPush, manifestType), event(2, api.ActionPull, "")}
	for _, e := range want {
		n.Emit(context.Background(), e)
	}
	waitFor(t, "2 events", func() bool { return len(h.received()) == 2 })

	h.mu.Lock()
	defer h.mu.Unlock()
	if !reflect.DeepEqual(h.events, want) {
		t.Errorf("events =\n%+v\nwant\n%+v", h.events, want)
	}
	for i, hdr := range h.headers {
		if h.methods[i] != http.MethodPost {
			t.Errorf("method = %s, want POST", h.methods[i])
		}
		if got := hdr.Get("Content-Type"); got != EventsMediaType {
			t.Errorf("Content-Type = %q, want %q", got, EventsMediaType)
		}
		if got := hdr.Get("Authorization"); got != "Bearer s3cret" {
			t.Errorf("Authorization = %q", got)
		}
		if got := hdr.Values("X-Multi"); !slices.Equal(got, []string{"one", "two"}) {
			t.Errorf("X-Multi = %q", got)
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(h.bodies[i], &top); err != nil || len(top) != 1 || top["events"] == nil {
			t.Errorf("body is not {\"events\":[...]}: %s (%v)", h.bodies[i], err)
		}
	}
	waitFor(t, "empty queue", func() bool { return n.Stats()["hook"].Pending == 0 })
	if s := n.Stats()["hook"]; s.Delivered != 2 || s.Failed != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestIgnoredEventsAreNotQueued(t *testing.T) {
	h := newHook(t)
	ep := h.endpoint("hook")
	ep.IgnoredMediaTypes = []string{"application/octet-stream"}
	ep.Ignore = Ignore{MediaTypes: []string{"application/vnd.oci.image.layer.v1.tar"}, Actions: []string{api.ActionPull}}
	off := Endpoint{Name: "off", Disabled: true, URL: "http://127.0.0.1:1/never"}
	n := open(t, Config{Endpoints: []Endpoint{ep, off}}, t.TempDir())
	run(t, n)

	for _, e := range []api.Event{
		event(1, api.ActionPush, "application/octet-stream"),
		event(2, api.ActionPull, manifestType),
		event(3, api.ActionPush, "application/vnd.oci.image.layer.v1.tar"),
		event(4, api.ActionPush, manifestType),
		event(5, api.ActionDelete, ""),
		event(6, api.ActionMount, "application/vnd.oci.image.config.v1+json"),
	} {
		n.Emit(context.Background(), e)
	}
	want := []string{"ev-004", "ev-005", "ev-006"}
	waitFor(t, "3 events", func() bool { return len(h.received()) >= 3 })
	if got := h.received(); !slices.Equal(got, want) {
		t.Errorf("received %v, want %v", got, want)
	}
	waitFor(t, "empty queue", func() bool { return n.Stats()["hook"].Pending == 0 })
	stats := n.Stats()
	if _, ok := stats["off"]; ok || len(stats) != 1 {
		t.Errorf("stats cover %v, want only the enabled endpoint", stats)
	}
	if s := stats["hook"]; s.Pending != 0 || s.Delivered != 3 {
		t.Errorf("stats = %+v, want nothing else queued", s)
	}
}

func TestRetriesDeliverEachEventOnceInOrder(t *testing.T) {
	h := newHook(t)
	h.failN.Store(3)
	n := open(t, Config{Endpoints: []Endpoint{h.endpoint("hook")}}, t.TempDir())
	run(t, n)

	want := emit(n, 0, 99)
	waitFor(t, "100 events", func() bool { return len(h.received()) >= len(want) })
	if got := h.received(); !slices.Equal(got, want) {
		t.Errorf("received %v,\nwant %v", got, want)
	}
	h.mu.Lock()
	for _, b := range h.batches {
		if b > maxBatch {
			t.Errorf("a request carried %d events, more than %d", b, maxBatch)
		}
	}
	h.mu.Unlock()
	waitFor(t, "empty queue", func() bool { return n.Stats()["hook"].Pending == 0 })
	s := n.Stats()["hook"]
	if s.Failed != 3 || s.Delivered != 100 || s.Pending != 0 || s.LastError == "" {
		t.Errorf("stats = %+v, want 3 failed, 100 delivered, none pending", s)
	}
}

func TestRestartKeepsQueue(t *testing.T) {
	h := newHook(t)
	h.down.Store(true)
	cfg := Config{Endpoints: []Endpoint{h.endpoint("hook")}}
	dir := t.TempDir()

	n := open(t, cfg, dir)
	stop := run(t, n)
	want := emit(n, 0, 2)
	waitFor(t, "a failed delivery", func() bool { return n.Stats()["hook"].Failed >= 2 })
	stop()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n = open(t, cfg, dir)
	if s := n.Stats()["hook"]; s.Pending != 3 {
		t.Fatalf("after restart pending = %d, want 3", s.Pending)
	}
	stop = run(t, n)
	want = append(want, emit(n, 3, 3)...)
	h.down.Store(false)
	waitFor(t, "4 events", func() bool { return len(h.received()) >= 4 })
	if got := h.received(); !slices.Equal(got, want) {
		t.Errorf("received %v, want %v", got, want)
	}
	waitFor(t, "empty queue", func() bool { return n.Stats()["hook"].Pending == 0 })
	stop()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n = open(t, cfg, dir)
	if s := n.Stats()["hook"]; s.Pending != 0 {
		t.Errorf("delivered events still queued after restart: %+v", s)
	}
}

func TestEndpointsAreIndependent(t *testing.T) {
	up, down := newHook(t), newHook(t)
	down.down.Store(true)
	n := open(t, Config{Endpoints: []Endpoint{down.endpoint("down"), up.endpoint("up")}}, t.TempDir())
	run(t, n)

	want := emit(n, 0, 9)
	waitFor(t, "delivery to the live endpoint", func() bool { return len(up.received()) >= 10 })
	if got := up.received(); !slices.Equal(got, want) {
		t.Errorf("live endpoint received %v, want %v", got, want)
	}
	if s := n.Stats()["down"]; s.Pending != 10 || s.Delivered != 0 {
		t.Errorf("down endpoint stats = %+v, want 10 pending", s)
	}

	down.down.Store(false)
	waitFor(t, "delivery after recovery", func() bool { return len(down.received()) >= 10 })
	if got := down.received(); !slices.Equal(got, want) {
		t.Errorf("recovered endpoint received %v, want %v", got, want)
	}
}

func TestSlowEndpointDoesNotBlockEmit(t *testing.T) {
	h := newHook(t)
	h.hang.Store(true)
	ep := h.endpoint("slow")
	ep.Timeout = 500 * time.Millisecond
	n := open(t, Config{Endpoints: []Endpoint{ep}}, t.TempDir())
	run(t, n)

	want := emit(n, 0, 0)
	select {
	case <-h.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the endpoint never received a request")
	}
	var slowest time.Duration
	for i := 1; i <= 50; i++ {
		start := time.Now()
		want = append(want, emit(n, i, i)...)
		slowest = max(slowest, time.Since(start))
	}
	if slowest >= ep.Timeout/2 {
		t.Errorf("slowest Emit took %v while the endpoint hung; Emit must not wait for delivery", slowest)
	}
	waitFor(t, "a timed-out request", func() bool { return n.Stats()["slow"].Failed >= 1 })

	h.hang.Store(false)
	waitFor(t, "51 events", func() bool { return len(h.received()) >= len(want) })
	if got := h.received(); !slices.Equal(got, want) {
		t.Errorf("received %v, want %v", got, want)
	}
}

func TestNoEnabledEndpointOpensNothing(t *testing.T) {
	dir := t.TempDir()
	n := open(t, Config{Endpoints: []Endpoint{{Name: "off", Disabled: true}}}, dir)
	run(t, n)
	n.Emit(context.Background(), event(1, api.ActionPush, manifestType))
	if len(n.Stats()) != 0 {
		t.Errorf("stats = %v, want none", n.Stats())
	}
	if _, err := os.Stat(filepath.Join(dir, DBName)); !os.IsNotExist(err) {
		t.Errorf("queue file created without an enabled endpoint (stat: %v)", err)
	}
}

func TestAcceptedStatuses(t *testing.T) {
	for _, tc := range []struct {
		status int
		ok     bool
	}{
		{200, true}, {202, true}, {204, true}, {299, true}, {304, true}, {399, true},
		{400, false}, {401, false}, {404, false}, {500, false}, {503, false},
	} {
		srv := newStatusServer(t, tc.status)
		ep := &endpoint{cfg: Endpoint{URL: srv, Timeout: 5 * time.Second}, client: http.DefaultClient}
		err := ep.post(context.Background(), envelope(nil))
		if (err == nil) != tc.ok {
			t.Errorf("status %d: err = %v, want accepted %v", tc.status, err, tc.ok)
		}
	}
}
