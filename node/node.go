// Package node is one registry member: it opens the local storage, serves
// the registry API with health, status and metrics endpoints, and runs the
// background work. In a cluster it joins the other members by gossip,
// replicates metadata to all of them, places each blob on the members the
// ring names, and routes requests for what it does not hold; on its own it
// is a complete single-node registry.
//
// Node wires the parts together and runs their lifecycle (New, Serve,
// Close; server.go). The rest is small types holding only what they need:
// membership keeps the view of the cluster (cluster.go); memberClient is
// the one way to call another member, with the member token
// (memberclient.go); rules enforces quotas and immutable tags and answers
// the members' questions about them (rules.go, quotas.go); gcHTTP serves
// garbage collection's endpoints (gchttp.go); statusReport the cluster
// status (status.go); Registry2 imports registry:2 trees (registry2.go);
// clusterWork gives replication the owner of each piece of work and blobs
// wherever they are (replication.go). The work itself is in the
// subpackages: placement, route, metasync, gc, policy, pullthrough,
// replication, notify, registry2.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/auth"
	"github.com/atollhq/atoll/api/ui"
	"github.com/atollhq/atoll/node/gc"
	"github.com/atollhq/atoll/node/gc/fence"
	"github.com/atollhq/atoll/node/metasync"
	"github.com/atollhq/atoll/node/notify"
	"github.com/atollhq/atoll/node/placement"
	"github.com/atollhq/atoll/node/pullthrough"
	"github.com/atollhq/atoll/node/replication"
	"github.com/atollhq/atoll/node/route"
	"github.com/atollhq/atoll/peer"
	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/filesystem"
	"github.com/atollhq/atoll/storage/metadb"
	"github.com/atollhq/atoll/storage/s3"
)

// Node is a member.
type Node struct {
	cfg     Config
	log     *slog.Logger
	name    string
	meta    *metasync.Store
	local   placement.LocalStore
	served  storage.BlobStore // what the registry serves from (placement.Placer.Served)
	cache   *placement.Cache  // blobs read from a bucket; nil on local disk
	blobs   *placement.Placer // places, rebalances and hands off the blobs held here
	reg     *api.Registry
	notify  *notify.Notifier
	auth    *auth.Authenticator // nil: no authentication
	metrics *metrics
	handler http.Handler
	rules   *rules        // quotas and immutable tags
	fence   *fence.Fence  // keeps collections off the blobs pushes use
	gc      *gc.Collector // garbage collection with retention (gchttp.go)
	scrub   *scrubHTTP    // reads back every blob (scrubhttp.go)
	refetch *refetch      // bad copies a scrub could not replace yet; nil off a cluster on local disks

	replication *replication.Replicator // nil without rules (replication.go)

	// Cluster state; cluster is nil for a member on its own.
	cluster    *peer.Cluster
	views      views
	metasync   *metasync.Replicator
	membership *membership   // keeps views current (cluster.go)
	members    *memberClient // calls to other members' HTTP endpoints (memberclient.go)
	router     *route.Router // serves, proxies or redirects what members hold (route.go)
}

// New opens the member's storage and, in a cluster, starts gossip and the
// gRPC services. Close releases them.
func New(cfg Config, log *slog.Logger) (*Node, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{
		cfg:  cfg,
		log:  log,
		name: cfg.Cluster.NodeName,
	}
	var err error
	if n.metrics, err = newMetrics(); err != nil {
		return nil, err
	}
	n.members = &memberClient{scheme: "http", token: HTTPToken(cfg.Cluster.Secret), client: &http.Client{Transport: route.Transport(0)}, views: &n.views}
	if cfg.TLS.Certificate != "" {
		n.members.scheme = "https"
	}
	if cfg.Auth.Enabled() {
		if cfg.Cluster.Enabled && cfg.Cluster.Secret == "" {
			return nil, errors.New("a cluster with authentication needs a cluster secret: members vouch for their clients with it")
		}
		a, err := auth.New(cfg.Auth, auth.Deps{Logger: log, KeySeed: []byte(cfg.Cluster.Secret)})
		if err != nil {
			return nil, err
		}
		n.auth = a
		cfg.API.NoAnonymousMount = true // a digest alone must not open another repository's blob
	}
	local, err := openBlobStore(cfg)
	if err != nil {
		return nil, err
	}
	n.local = local
	if cfg.Storage.S3 != nil {
		if n.cache, err = placement.NewCache(context.Background(), local, filepath.Join(cfg.DataDir, "cache"), cfg.Storage.CacheSize); err != nil {
			return nil, err
		}
	}
	meta, err := metadb.Open(filepath.Join(cfg.DataDir, "metadata.db"), metadb.Options{Origin: n.name, Config: cfg.Metadata})
	if errors.Is(err, metadb.ErrCorrupt) {
		return nil, fmt.Errorf("%w\n%s", err, corruptAdvice(cfg.Cluster.Enabled))
	}
	if err != nil {
		return nil, err
	}
	n.metasync = metasync.New(cfg.Cluster.Metadata,
		metasync.Deps{Self: n.name, Log: meta, Logger: log, Joining: cfg.Cluster.Enabled && len(cfg.Cluster.Join) > 0})
	n.meta = metasync.Wrap(meta, n.metasync) // writes return once another member holds them
	if n.notify, err = notify.New(cfg.Notifications, cfg.DataDir, log); err != nil {
		_ = n.meta.Close()
		return nil, err
	}
	// A client told a blob exists has as long as an upload may idle (at
	// most a day) to push the manifest that uses it.
	n.fence = fence.New(fence.Config{Window: min(cfg.API.UploadTTL, 24*time.Hour)}, n.blobExists)
	if err := n.fence.Load(fencePath(cfg.DataDir)); err != nil {
		log.Warn("what clients were told before the restart is lost", "err", err)
	}
	if n.rules, err = newRules(n); err != nil {
		_ = n.notify.Close()
		_ = n.meta.Close()
		return nil, err
	}
	gcDeps := gc.Deps{Self: n.name, Blobs: n.local, Meta: n.meta, Fence: n.fence, Immutable: n.rules.immutable.Covers,
		Freed: func(k int) { n.metrics.gcFreed.Add(float64(k)) }, Log: log}
	if n.cache != nil {
		gcDeps.Deleted = n.cache.Forget
	}
	if cfg.Cluster.Enabled {
		gcDeps.Members = gcMembers{self: n.name, views: &n.views, members: n.members, sync: n.metasync}
	}
	if n.gc, err = gc.New(cfg.GC, gcDeps); err != nil {
		_ = n.notify.Close()
		_ = n.meta.Close()
		return nil, err
	}
	deps := api.Deps{Meta: n.meta, Logger: log, Claims: n.fence, Policy: n.rules}
	if n.auth != nil {
		deps.Visible, deps.Actor = visibleTo(n.auth), actor
	}
	if len(n.notify.Stats()) > 0 {
		deps.Events = n.notify
	}
	if cfg.Cluster.Enabled {
		deps.NewUploadID = func() string { return route.NewUploadID(cfg.Cluster.NodeName) }
		n.membership = newMembership(n.name, cfg.Cluster.Placement.Ring, &n.views, log)
		n.cluster, err = peer.New(cfg.Cluster.Config, peer.Deps{
			Metadata: n.meta, Blobs: placement.NewPeerBlobs(n.name, n.local), Events: n.membership, Logger: log,
		})
		if err != nil {
			_ = n.notify.Close()
			_ = n.meta.Close()
			return nil, err
		}
		n.metasync.Connect(n.cluster.Client())
		n.membership.cluster = n.cluster
		n.membership.refresh()
	}
	if n.blobs, err = n.newPlacer(); err != nil {
		_ = n.Close()
		return nil, err
	}
	n.served = n.blobs.Served()
	deps.Blobs = n.served
	n.router = n.newRouter()
	if n.cluster != nil {
		deps.Remote = n.router
	}
	if cfg.PullThrough.Enabled() {
		pd := pullthrough.Deps{Blobs: deps.Blobs, Meta: n.meta, Logger: log, Metrics: n.metrics.reg}
		if n.cluster != nil {
			pd.Members = cacheMembers{self: n.name, views: &n.views, members: n.members}
		}
		if deps.Upstream, err = pullthrough.New(cfg.PullThrough, pd); err != nil {
			_ = n.Close()
			return nil, err
		}
	}
	work := clusterWork{self: n.name, cluster: n.cluster, joining: len(cfg.Cluster.Join) > 0, views: &n.views, members: n.members, local: n.blobs}
	rd := replication.Deps{Blobs: n.served, Meta: n.meta, Logger: log, Metrics: n.metrics.reg}
	if n.replication, err = setUpReplication(cfg, rd, work, &deps); err != nil {
		_ = n.Close()
		return nil, err
	}
	n.reg = api.New(cfg.API, deps)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", n.readyz)
	mux.Handle("GET /_atoll/v1/cluster", n.admin(newStatusReport(cfg, &n.views, n.blobs.Held).serve))
	mux.HandleFunc("GET "+route.BlobPath+"{digest}", n.router.ServeMember)
	gcs := &gcHTTP{self: n.name, gc: n.gc, views: &n.views, members: n.members, trusted: n.trusted}
	mux.Handle("POST /_atoll/v1/gc", n.admin(gcs.serveGC))
	fromMember := func(h http.HandlerFunc) http.Handler { return memberOnly(n.cluster != nil, n.trusted, h) }
	mux.Handle("POST /_atoll/v1/immutable/claim", fromMember(n.rules.serveClaim))
	mux.Handle("POST /_atoll/v1/quota/reserve", fromMember(n.rules.serveQuotaReserve))
	mux.Handle("POST /_atoll/v1/quota/settle", fromMember(n.rules.serveQuotaSettle))
	mux.Handle("POST /_atoll/v1/gc/fence", fromMember(gcs.serveFence))
	mux.Handle("GET /_atoll/v1/usage", n.admin(n.rules.serveUsage))
	mux.Handle("GET /_atoll/v1/replication", n.admin(serveReplication(n.name, n.replication, deps.Upstream)))
	mux.Handle("GET "+backupPath, n.admin(serveBackup(meta, n.metasync.CaughtUp, log))) // backup.go
	if n.cluster != nil && n.cache == nil {
		n.refetch = newRefetch(n)
	}
	n.scrub = n.newScrubHTTP()
	mux.Handle("POST "+scrubPath, n.admin(n.scrub.serve)) // scrubhttp.go
	if n.cluster != nil {
		servePullThrough(mux, deps.Upstream, fromMember)
	}
	mux.Handle("/ui/", ui.Handler())
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	var registry http.Handler = n.reg
	if n.auth != nil {
		registry = n.router.MemberIdentity(n.auth.Wrap(n.reg))
		mux.Handle(auth.TokenPath, n.auth.TokenHandler())
	}
	if len(cfg.Headers) > 0 {
		registry = withHeaders(cfg.Headers, registry)
	}
	if n.cluster != nil && len(cfg.Cluster.Join) > 0 { // a member that joins nobody serves at once (metasync.Replicator.Run)
		gate := catchUpGate{self: n.name, caughtUp: n.metasync.CaughtUp, membership: n.membership, members: n.members, log: log}
		registry = gate.wrap(registry) // catchup.go
	}
	mux.Handle("/v2/", n.instrument(registry))
	mux.Handle("/v1/search", n.instrument(registry))
	if err := n.metrics.watch(n); err != nil {
		_ = n.Close()
		return nil, err
	}
	n.handler = api.IdleBodies(cfg.ReadIdle, recoverPanics(log, mux)) // a stalled body holds nothing for long; recover.go
	return n, nil
}

// openBlobStore opens the configured blob store.
func openBlobStore(cfg Config) (placement.LocalStore, error) {
	if cfg.Storage.S3 != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := *cfg.Storage.S3
		c.SpillDir = filepath.Join(cfg.DataDir, "spill") // parts of uploads past the memory budget
		return s3.New(ctx, c)
	}
	return filesystem.New(cfg.DataDir)
}

// Handler serves the registry and the member's own endpoints.
func (n *Node) Handler() http.Handler { return n.handler }

// Close releases the storage and leaves the cluster without handing off.
func (n *Node) Close() error {
	if n.cache != nil {
		n.cache.Wait()
	}
	var errs []error
	if n.cluster != nil {
		errs = append(errs, n.cluster.Close())
	}
	if n.replication != nil {
		errs = append(errs, n.replication.Close())
	}
	return errors.Join(append(errs, n.notify.Close(), n.meta.Close())...)
}

func (n *Node) startBackground(ctx context.Context, wg *sync.WaitGroup) {
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	// First: a member that joins catches up before its own writes go
	// ahead (metasync.Replicator.waitCaughtUp); on its own, it trims the
	// log and compacts metadata.db.
	run(n.metasync.Run)
	run(n.janitor)
	run(func(ctx context.Context) { saveFence(ctx, n.fence, fencePath(n.cfg.DataDir), n.log) })
	run(n.notify.Run)
	run(n.Registry2().verify)
	if n.replication != nil {
		run(n.replication.Run)
	}
	run(n.gc.Run)
	run(n.scheduledScrubs)
	if n.refetch != nil {
		run(n.refetch.run)
	}
	if n.cluster == nil {
		return
	}
	n.cluster.Start()
	run(func(ctx context.Context) { n.membership.watch(ctx, n.metasync, n.blobs) })
	run(n.blobs.Run)
	run(func(ctx context.Context) { announceStats(ctx, n.cluster, n.blobs.Held) })
	n.membership.MembershipChanged()
}

// handOff, on a graceful stop, announces that this member leaves, copies
// every held blob to its owners among the members that stay
// (placement.Placer.HandOff), then leaves the cluster.
func (n *Node) handOff(ctx context.Context) error {
	if n.cluster == nil {
		return nil
	}
	const leaveTimeout = 5 * time.Second
	n.cluster.AnnounceLeaving(leaveTimeout)
	_ = n.blobs.HandOff(ctx) // logged; a hand-off cut short loses nothing
	return n.cluster.Leave(leaveTimeout)
}

// every runs fn every interval until ctx is done, first at once when now
// is set.
func every(ctx context.Context, interval time.Duration, now bool, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	if now {
		fn(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

// janitor purges abandoned uploads now and then.
func (n *Node) janitor(ctx context.Context) {
	every(ctx, n.cfg.JanitorInterval, true, func(ctx context.Context) {
		expired, err := n.reg.ExpireUploads(ctx, time.Now())
		if err != nil && ctx.Err() == nil {
			n.log.Warn("expiring uploads", "err", err)
		} else if expired > 0 {
			n.log.Info("expired abandoned uploads", "count", expired)
		}
	})
}

// corruptAdvice tells the operator what to do about a corrupt metadata.db.
func corruptAdvice(clustered bool) string {
	if clustered {
		return "Move metadata.db aside (keep it for inspection) and start this member again: it installs a " +
			"snapshot of the metadata from the other members before it serves, and its blobs stay where they are."
	}
	return "The manifests and tags are in this file only (the blobs are intact): restore metadata.db from a backup " +
		"(atoll backup, or a copy taken with the registry stopped) and start the registry again."
}
