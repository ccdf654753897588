package api

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/oci"
)

// Event actions, as registry:2's notifications name them.
const (
	ActionPush   = "push"
	ActionPull   = "pull"
	ActionDelete = "delete"
	ActionMount  = "mount"
)

// Event is something a client did, in the shape of registry:2's
// notification events (application/vnd.docker.distribution.events.v1+json).
type Event struct {
	ID        string       `json:"id"`
	Timestamp time.Time    `json:"timestamp"`
	Action    string       `json:"action"`
	Target    EventTarget  `json:"target"`
	Request   EventRequest `json:"request"`
	Actor     EventActor   `json:"actor"`
}

// EventTarget is the content an event is about.
type EventTarget struct {
	MediaType      string        `json:"mediaType,omitempty"`
	Digest         digest.Digest `json:"digest,omitempty"`
	Size           int64         `json:"size,omitempty"`
	Repository     string        `json:"repository"`
	URL            string        `json:"url,omitempty"`
	Tag            string        `json:"tag,omitempty"`
	FromRepository string        `json:"fromRepository,omitempty"`
	// References are the descriptors a manifest refers to (config and
	// layers, or an index's manifests), as registry:2 sends them with
	// notifications.events.includereferences.
	References []v1.Descriptor `json:"references,omitempty"`
}

// references lists what manifest m refers to, for events.
func references(m *oci.Manifest) []v1.Descriptor {
	var out []v1.Descriptor
	if m.Config != nil {
		out = append(out, *m.Config)
	}
	out = append(out, m.Layers...)
	return append(out, m.Manifests...)
}

// EventRequest describes the request that caused an event.
type EventRequest struct {
	ID        string `json:"id"`
	Addr      string `json:"addr"`
	Host      string `json:"host"`
	Method    string `json:"method"`
	UserAgent string `json:"useragent"`
}

// EventActor is who made the request; empty for anonymous requests.
type EventActor struct {
	Name string `json:"name,omitempty"`
}

// EventSink receives events once the change they report is durable. Emit
// must not block on delivery: queue and return.
type EventSink interface {
	Emit(ctx context.Context, e Event)
}

// RequestIDHeader carries a request's id, kept across proxy hops between
// members.
const RequestIDHeader = "X-Request-Id"

// emitter reports events about requests to a sink, naming the actor. With
// no sink it reports nothing. It may be used concurrently.
type emitter struct {
	sink  EventSink // nil: no events
	actor func(r *http.Request) string
}

// enabled reports whether events go anywhere, so a handler can skip the
// work of describing one.
func (e emitter) enabled() bool { return e.sink != nil }

// emit reports an event about r when a sink is configured.
func (e emitter) emit(r *http.Request, action string, t EventTarget) {
	if e.sink == nil {
		return
	}
	addr := r.RemoteAddr
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	if t.URL == "" && t.Digest != "" {
		kind := "blobs"
		if t.Tag != "" || oci.IsManifestType(t.MediaType) {
			kind = "manifests"
		}
		t.URL = "/v2/" + t.Repository + "/" + kind + "/" + t.Digest.String()
	}
	e.sink.Emit(r.Context(), Event{
		ID:        randomID(),
		Timestamp: time.Now().UTC(),
		Action:    action,
		Target:    t,
		Request: EventRequest{
			ID:        r.Header.Get(RequestIDHeader),
			Addr:      addr,
			Host:      r.Host,
			Method:    r.Method,
			UserAgent: r.UserAgent(),
		},
		Actor: EventActor{Name: e.actor(r)},
	})
}
