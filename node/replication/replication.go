// Package replication mirrors repositories between this registry and
// others, by rules naming a remote registry, a direction and repository
// globs. go-containerregistry is the client to the remote.
//
//   - push: each manifest push and delete here is queued on disk (package
//     queue, the webhooks' design) on the member that acknowledged it, and
//     sent to the remote in order, at least once, retried with backoff until
//     the remote takes it. Every Interval the ring owner of each matching
//     repository also checks that the remote has every local tag and its
//     referrers, and sends what is missing: pushes queued on a member that
//     died and never came back still arrive.
//   - pull: every Interval the remote's catalog is listed and each matching
//     repository is copied here (tags, the manifests and blobs they need,
//     and referrers) by its ring owner, so each runs once cluster-wide.
//     Copies are resumable: a tag already pointing at the remote's digest is
//     skipped, as is a blob already linked, so a pass cut short by a dead
//     member is finished by the next owner without copying twice.
//
// Invariant: content is stored the way a push stores it (blobs through the
// blob store, which places them on their owners, and linked into the
// repository; a manifest stored only after everything it references), so
// garbage collection and cluster replication see no difference.
package replication

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/node/queue"
	"github.com/atollhq/atoll/oci"
	"github.com/atollhq/atoll/storage"
)

// QueueFile is the file, in the data directory, of the push queue.
const QueueFile = "replication.db"

// Deps are what replication reads and writes here.
type Deps struct {
	// Blobs stores pulled blobs (in a cluster: placed on their owners).
	Blobs storage.BlobStore
	// Meta holds manifests, tags and blob links.
	Meta storage.Metadata
	// Open reads a blob wherever in the cluster it is. Required.
	Open func(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error)
	// Owns reports whether this member does the work named key (the ring
	// owner of key). Nil: always (a registry on its own).
	Owns func(key string) bool
	// DataDir holds QueueFile.
	DataDir string
	// Logger is optional.
	Logger *slog.Logger
	// Metrics registers the replication metrics. Optional.
	Metrics prometheus.Registerer
}

// Replicator runs the rules: it queues the events of the push rules and
// reports every rule's status; a pusher and a puller do the work. Emit may
// be called concurrently with everything; Close only after Run has
// returned.
type Replicator struct {
	rules []*rule
	log   *slog.Logger
	q     *queue.Queue             // nil without push rules
	wake  map[string]chan struct{} // per push rule: an event was queued
	m     *metrics
	fails *failures // for Status
	push  *pusher
	pull  *puller
}

var _ api.EventSink = (*Replicator)(nil)

// New validates cfg and opens the push queue. It does not contact the
// remotes.
func New(cfg Config, deps Deps) (*Replicator, error) {
	rules, err := cfg.compile()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("replication: %w", err)
	}
	r := &Replicator{rules: rules, log: deps.Logger, wake: map[string]chan struct{}{}, m: m}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	owns := deps.Owns
	if owns == nil {
		owns = func(string) bool { return true }
	}
	r.fails = &failures{counter: r.m.failures}
	var streams []string
	for _, rl := range rules {
		if rl.Direction == Push {
			streams = append(streams, rl.Name)
			r.wake[rl.Name] = make(chan struct{}, 1)
		}
		r.log.Info("replication rule", "rule", rl.Name, "direction", rl.Direction, "remote", rl.Remote.URL,
			"repositories", rl.Repositories, "interval", rl.Interval)
	}
	if len(streams) > 0 {
		if r.q, err = queue.Open(filepath.Join(deps.DataDir, QueueFile), streams); err != nil {
			return nil, fmt.Errorf("replication: %w", err)
		}
		for _, s := range streams {
			if n, err := r.q.Len(s); err == nil {
				r.m.queued.WithLabelValues(s).Set(float64(n))
			}
		}
	}
	r.push = &pusher{q: r.q, wake: r.wake, meta: deps.Meta, open: deps.Open, owns: owns, m: r.m, log: r.log, fails: r.fails}
	r.pull = &puller{blobs: deps.Blobs, meta: deps.Meta, owns: owns, m: r.m, log: r.log, fails: r.fails}
	return r, nil
}

// event is a queued change: a manifest pushed (tagged or not) or deleted, or
// a tag deleted.
type event struct {
	Action string        `json:"action"` // api.ActionPush or api.ActionDelete
	Repo   string        `json:"repo"`
	Digest digest.Digest `json:"digest,omitempty"`
	Tag    string        `json:"tag,omitempty"`
}

// Emit implements api.EventSink: a manifest push or a delete in a
// repository a push rule matches is queued, durably, for that rule. It
// returns once queued; an event it cannot queue is logged (the rule's
// periodic check still sends pushes).
func (r *Replicator) Emit(_ context.Context, e api.Event) {
	ev := event{Action: e.Action, Repo: e.Target.Repository, Digest: e.Target.Digest, Tag: e.Target.Tag}
	switch {
	case e.Action == api.ActionPush && oci.IsManifestType(e.Target.MediaType):
	case e.Action == api.ActionDelete:
	default:
		return
	}
	var to []string
	for _, rl := range r.rules {
		if rl.Direction == Push && rl.matches(ev.Repo) {
			to = append(to, rl.Name)
		}
	}
	if len(to) == 0 {
		return
	}
	b, err := json.Marshal(ev)
	if err == nil {
		err = r.q.Append(to, b)
	}
	if err != nil {
		r.log.Error("replication event not queued", "repository", ev.Repo, "digest", ev.Digest, "tag", ev.Tag, "err", err)
		return
	}
	for _, name := range to {
		r.m.queued.WithLabelValues(name).Inc()
		select {
		case r.wake[name] <- struct{}{}:
		default:
		}
	}
}

// Run runs every rule until ctx is done.
func (r *Replicator) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, rl := range r.rules {
		if rl.Direction == Push {
			wg.Go(func() { r.push.runPush(ctx, rl) })
		} else {
			wg.Go(func() { r.pull.runPull(ctx, rl) })
		}
	}
	wg.Wait()
}

// Close closes the push queue. Call it after Run has returned.
func (r *Replicator) Close() error {
	if r.q == nil {
		return nil
	}
	return r.q.Close()
}

// manifest parses a stored manifest.
func parse(m *storage.Manifest) (*oci.Manifest, error) {
	return oci.Parse(m.Descriptor.MediaType, m.Content)
}

// randomID names an upload in the blob store.
func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
