// Package placement keeps each layer and config blob on the members the
// ring names for it. It is one member's side of blob placement:
//
//   - Replicate while receiving: a client's upload reaches Replicas
//     members as its bytes arrive: the blob's owners when its digest is
//     known from the start (monolithic), in a chain (each owner passes the
//     bytes on to the next), else holders chosen for the session, whose
//     copies rebalancing moves to the owners later; the final PUT commits
//     on every holder at once (replicate.go, and the holders' side in
//     replicas.go).
//   - Place: when holders failed on the way (or the transport keeps no
//     replicas), a committed upload is copied to the first Replicas live
//     members of the blob's preference list (its owners first, then the
//     rest of the ring, past members that fail) before the client hears
//     201 (place.go).
//   - Rebalance: after every membership change (once it settles) and every
//     RebalanceInterval, each held blob is checked against the ring; owners
//     that lack it get a copy, and a copy this member no longer owns is
//     deleted only once every current owner confirmed its own
//     (rebalance.go).
//   - Hand-off: on a graceful stop the held blobs go to their owners among
//     the members that stay; nothing is deleted, and with nobody staying
//     the hand-off is skipped (handoff.go).
//   - Serving other members: Has and Put over the local store, the digest
//     verified on arrival (serve.go).
//   - The blob store the registry serves from: the decorators that place
//     on commit (cluster on local disks) or route reads to the member that
//     caches a blob (shared bucket), keeping every optional capability of
//     the store they wrap (capabilities.go, shared.go), and the disk cache
//     of a bucket (cache.go).
//
// The invariant placement keeps: a member deletes a copy of a blob only
// after every owner of the blob in the ring it acts on confirmed holding
// it, so no rebalance, hand-off or placement loses the last copy.
//
// It consumes what it declares here: a Transport to other members (peer's
// Cluster), the Members of the cluster (the node's view of the ring), and
// the member's LocalStore. Fakes of the first and last live in testing.go
// and in peer's testing files, so the algorithms are tested in memory.
package placement

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atollhq/atoll/ring"
	"github.com/atollhq/atoll/storage"
)

// Config tunes blob placement.
type Config struct {
	// Replicas is how many members hold each blob. Default 2.
	Replicas int `yaml:"replicas"`
	// RebalanceInterval is how often held blobs are checked against the
	// ring besides every membership change. Default 5m.
	RebalanceInterval time.Duration `yaml:"rebalanceinterval"`
	// Settle is how long a rebalance waits after a membership change, so a
	// burst of changes costs one pass. Default 2s.
	Settle time.Duration `yaml:"settle"`
	// Ring is the ring configuration, for the ring of the members that
	// stay during a hand-off.
	Ring ring.Config `yaml:"ring"`
}

func (c *Config) applyDefaults() {
	if c.Replicas <= 0 {
		c.Replicas = 2
	}
	if c.RebalanceInterval <= 0 {
		c.RebalanceInterval = 5 * time.Minute
	}
	if c.Settle <= 0 {
		c.Settle = 2 * time.Second
	}
}

// LocalStore is what a member needs of its own blob store. Both backends
// (filesystem, S3) have every capability named here; see capabilities.go.
type LocalStore interface {
	storage.BlobStore
	storage.BlobWalker
	storage.UsageReporter
	storage.UploadPurger
	// Check reports whether the store accepts writes.
	Check(ctx context.Context) error
}

// Transport reaches the other members' blob services; peer.Client
// implements it. Its methods may be called concurrently.
type Transport interface {
	// Has reports, for each digest in order, whether member holds the blob.
	Has(ctx context.Context, member string, ds []digest.Digest) ([]bool, error)
	// PutBlob streams size bytes from r to member as blob d and returns
	// once member stored them durably and verified the digest.
	PutBlob(ctx context.Context, member string, d digest.Digest, size int64, r io.Reader) error
}

// Ring is a placement of blobs on members; *ring.Ring implements it.
type Ring interface {
	// Owners returns the first n members the ring prefers for blob d.
	Owners(d digest.Digest, n int) []string
	// Len returns the number of members on the ring.
	Len() int
}

// Members is the cluster as placement sees it. Its methods may be called
// concurrently and must not block.
type Members interface {
	// Ring returns the ring over the live members.
	Ring() Ring
	// Live reports whether member is alive or suspect.
	Live(member string) bool
	// Staying returns the other members that are alive and have not
	// announced that they leave, sorted.
	Staying() []string
}

// Metrics counts placement's work. Nil counters count nothing.
type Metrics struct {
	BlobsCopied prometheus.Counter // blobs copied to other members
	BytesCopied prometheus.Counter // their bytes
	Rebalances  prometheus.Counter // rebalance passes
}

// Deps are what placement works with.
type Deps struct {
	// Self is this member's name.
	Self string
	// Local is this member's blob store.
	Local LocalStore
	// Transport reaches the other members; nil for a member on its own.
	Transport Transport
	// Members is the cluster; nil for a member on its own.
	Members Members
	// Cache is the disk cache of a shared bucket; nil on local disks. With
	// a cache, the bucket holds the one copy of each blob and placement
	// copies nothing.
	Cache *Cache
	// UploadMember returns the member an upload id names, or "". Upload
	// bytes in a shared bucket named after another live member are that
	// member's to purge.
	UploadMember func(id string) string
	Metrics      Metrics
	// Peer is what this member serves the others, when it does: the
	// placer hears through it of the replicas that became blobs here.
	Peer PeerBlobs
	// Logger receives placement's logs. Nil discards them.
	Logger *slog.Logger
}

// Placer places, rebalances and hands off one member's blobs. Its methods
// may be called concurrently.
type Placer struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	kick chan struct{}
	// limits bound the holders of replicated uploads (replicastream.go).
	limits replicaLimits
}

// New returns the placer of deps.Self's blobs.
func New(cfg Config, deps Deps) (*Placer, error) {
	cfg.applyDefaults()
	if deps.Local == nil {
		return nil, errors.New("placement: no local blob store")
	}
	if (deps.Transport == nil) != (deps.Members == nil) {
		return nil, errors.New("placement: a cluster needs both a transport and its members")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.UploadMember == nil {
		deps.UploadMember = func(string) string { return "" }
	}
	discard := func(c *prometheus.Counter) {
		if *c == nil {
			*c = prometheus.NewCounter(prometheus.CounterOpts{Name: "unused"})
		}
	}
	discard(&deps.Metrics.BlobsCopied)
	discard(&deps.Metrics.BytesCopied)
	discard(&deps.Metrics.Rebalances)
	p := &Placer{cfg: cfg, deps: deps, log: deps.Logger, kick: make(chan struct{}, 1), limits: replicaLimits{stall: replicaStall, durable: replicaDurable}}
	if deps.Peer.hook != nil {
		deps.Peer.hook.set(p)
	}
	return p, nil
}

// clustered reports whether this member has others to place blobs on.
func (p *Placer) clustered() bool { return p.deps.Transport != nil }

// liveOther reports whether member is another live member of the cluster.
func (p *Placer) liveOther(member string) bool {
	if !p.clustered() || member == "" || member == p.deps.Self {
		return false
	}
	return p.deps.Members.Live(member)
}

// uploadID names an upload of a blob another member sends to member self,
// after it like the registry's own sessions.
func uploadID(self string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "peer-" + self + "." + hex.EncodeToString(b)
}

// ReadLocal opens blob d as this member holds it: through the disk cache
// when blobs live in a bucket.
func (p *Placer) ReadLocal(ctx context.Context, d digest.Digest) (storage.Blob, error) {
	if p.deps.Cache != nil {
		return p.deps.Cache.Open(ctx, d)
	}
	return p.deps.Local.Open(ctx, d)
}

// Held returns the blobs this member holds on its disk: its store, or its
// cache of a shared bucket (where the bucket holds the one copy).
func (p *Placer) Held() (blobs, bytes int64) {
	if p.deps.Cache != nil {
		return p.deps.Cache.Usage()
	}
	return p.deps.Local.Usage()
}
