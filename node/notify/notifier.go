// Package notify sends the registry's events to webhooks, as registry:2's
// notifications do: same configuration, same envelope and media type.
//
// Unlike registry:2, which holds undelivered events in memory, every event
// is queued on disk before Emit returns, one queue per endpoint, so a
// restart or an endpoint that is down for hours loses none. Each endpoint
// has one sender that delivers its queue in order, at least once: an event
// is removed only after the endpoint accepted it, so a crash between the
// two sends it again.
package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/node/queue"
)

// Notifier queues events for the configured endpoints and, while Run runs,
// delivers them. Emit and Stats may be called concurrently with everything,
// including each other; Close only after Run has returned.
type Notifier struct {
	log       *slog.Logger
	refs      bool         // events carry the references of manifests
	q         *queue.Queue // nil when no endpoint is enabled
	endpoints []*endpoint
	transport *http.Transport
	running   atomic.Bool
}

var _ api.EventSink = (*Notifier)(nil)

// EndpointStats are an endpoint's delivery counters since New, for metrics.
type EndpointStats struct {
	// Pending is the number of events queued on disk, not yet delivered.
	Pending int64
	// Delivered counts events the endpoint accepted.
	Delivered uint64
	// Failed counts requests that failed (error, timeout, or a status
	// outside 200-399); each is retried.
	Failed uint64
	// Dropped counts events that could not be queued (a disk error).
	Dropped uint64
	// LastError is the latest delivery or queueing error; "" if none.
	LastError string
}

// endpoint is one enabled endpoint and its sender's state.
type endpoint struct {
	cfg       Endpoint
	mediaType string // of the envelope
	client    *http.Client
	wake      chan struct{} // signalled after an append; buffer 1

	pending   atomic.Int64
	delivered atomic.Uint64
	failed    atomic.Uint64
	dropped   atomic.Uint64
	mu        sync.Mutex
	lastErr   string
}

func (ep *endpoint) setError(err error) {
	ep.mu.Lock()
	ep.lastErr = err.Error()
	ep.mu.Unlock()
}

// DBName is the queue file New opens in its directory: one stream per
// endpoint (package queue).
const DBName = "notifications.db"

// New opens the queue in dir (file DBName, created if needed) for the
// enabled endpoints of cfg. It returns an error for an invalid
// configuration or a queue it cannot open; with no enabled endpoint it
// opens nothing and Emit does nothing. A nil log discards.
func New(cfg Config, dir string, log *slog.Logger) (*Notifier, error) {
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{log: log, refs: cfg.Events.IncludeReferences, transport: http.DefaultTransport.(*http.Transport).Clone()}
	var names []string
	for _, e := range cfg.Endpoints {
		if e.Disabled {
			continue
		}
		mt, _ := envelopeType(e.MediaType) // validated
		n.endpoints = append(n.endpoints, &endpoint{
			cfg:       e,
			mediaType: mt,
			client:    &http.Client{Transport: n.transport},
			wake:      make(chan struct{}, 1),
		})
		names = append(names, e.Name)
	}
	if len(n.endpoints) == 0 {
		return n, nil
	}
	q, err := queue.Open(filepath.Join(dir, DBName), names)
	if err != nil {
		return nil, fmt.Errorf("notifications queue: %w", err)
	}
	lengths, err := q.Lengths()
	if err != nil {
		_ = q.Close()
		return nil, fmt.Errorf("notifications queue: %w", err)
	}
	n.q = q
	for _, ep := range n.endpoints {
		ep.pending.Store(int64(lengths[ep.cfg.Name]))
		delete(lengths, ep.cfg.Name)
	}
	for name, pending := range lengths {
		if pending > 0 {
			log.Warn("notification queue kept for an endpoint not enabled", "endpoint", name, "pending", pending)
		}
	}
	return n, nil
}

// Emit queues e, durably, for every enabled endpoint that does not ignore
// its action or target media type. It returns once the event is on disk,
// without waiting for delivery; an event it cannot queue is logged and
// counted as dropped. ctx is not used: the change e reports has happened.
func (n *Notifier) Emit(_ context.Context, e api.Event) {
	var to []*endpoint
	for _, ep := range n.endpoints {
		if ep.cfg.accepts(e.Action, e.Target.MediaType) {
			to = append(to, ep)
		}
	}
	if len(to) == 0 {
		return
	}
	if !n.refs {
		e.Target.References = nil
	}
	err := n.append(to, e)
	for _, ep := range to {
		if err != nil {
			ep.dropped.Add(1)
			ep.setError(err)
			continue
		}
		ep.pending.Add(1)
		select {
		case ep.wake <- struct{}{}:
		default:
		}
	}
	if err != nil {
		n.log.Error("notification dropped", "action", e.Action, "repository", e.Target.Repository,
			"digest", e.Target.Digest, "error", err)
	}
}

func (n *Notifier) append(to []*endpoint, e api.Event) error {
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	names := make([]string, len(to))
	for i, ep := range to {
		names[i] = ep.cfg.Name
	}
	if err := n.q.Append(names, body); err != nil {
		return fmt.Errorf("queue event: %w", err)
	}
	return nil
}

// Run delivers the queues, one sender per endpoint, until ctx is done;
// undelivered events stay on disk for the next Run. A second Run while one
// is running returns at once.
func (n *Notifier) Run(ctx context.Context) {
	if !n.running.CompareAndSwap(false, true) {
		n.log.Error("notifications: Run called while running")
		return
	}
	defer n.running.Store(false)
	var wg sync.WaitGroup
	for _, ep := range n.endpoints {
		wg.Go(func() { n.send(ctx, ep) })
	}
	wg.Wait()
}

// Stats returns the counters of each enabled endpoint, by name.
func (n *Notifier) Stats() map[string]EndpointStats {
	s := make(map[string]EndpointStats, len(n.endpoints))
	for _, ep := range n.endpoints {
		ep.mu.Lock()
		lastErr := ep.lastErr
		ep.mu.Unlock()
		s[ep.cfg.Name] = EndpointStats{
			Pending:   ep.pending.Load(),
			Delivered: ep.delivered.Load(),
			Failed:    ep.failed.Load(),
			Dropped:   ep.dropped.Load(),
			LastError: lastErr,
		}
	}
	return s
}

// Close closes the queue. Call it after Run has returned; events emitted
// afterwards are dropped.
func (n *Notifier) Close() error {
	n.transport.CloseIdleConnections()
	if n.q == nil {
		return nil
	}
	return n.q.Close()
}
