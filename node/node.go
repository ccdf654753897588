// Package node is one registry member: it opens the local storage, serves
// the registry API with health, status and metrics endpoints, and runs the
// background work. In a cluster it joins the other members by gossip,
// replicates metadata to all of them, places each blob on the members the
// ring names, and routes requests for what it does not hold; on its own it
// is a complete single-node registry.
package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/auth"
	"github.com/atollhq/atoll/api/ui"
	"github.com/atollhq/atoll/node/notify"
	"github.com/atollhq/atoll/node/pullthrough"
	"github.com/atollhq/atoll/peer"
	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/filesystem"
	"github.com/atollhq/atoll/storage/metadb"
	"github.com/atollhq/atoll/storage/s3"
)

// Config is one member's configuration.
type Config struct {
	// Addr is the registry's listen address. Default ":5000".
	Addr string `yaml:"addr"`
	// DebugAddr serves /metrics and /debug/pprof when set. Default "".
	DebugAddr string `yaml:"debugAddr"`
	// DataDir holds blobs and metadata. Default "./data".
	DataDir string `yaml:"dataDir"`
	// API tunes the registry protocol.
	API api.Config `yaml:"api"`
	// Headers are added to every registry response (registry:2's
	// http.headers, e.g. X-Content-Type-Options: nosniff).
	Headers http.Header `yaml:"headers"`
	// TLS serves the registry over HTTPS when a certificate is set.
	TLS TLSConfig `yaml:"tls"`
	// Auth authenticates clients and checks their access. Default: none.
	Auth auth.Config `yaml:"auth"`
	// Storage selects where blobs live: DataDir (default) or a bucket.
	Storage StorageConfig `yaml:"storage"`
	// Cluster configures membership, placement and replication.
	Cluster ClusterConfig `yaml:"cluster"`
	// Notifications sends events to webhooks (registry:2's notifications).
	Notifications notify.Config `yaml:"notifications"`
	// PullThrough makes repositories caches of other registries.
	PullThrough pullthrough.Config `yaml:"pullthrough"`
	// JanitorInterval is how often expired uploads are purged. Default 10m.
	JanitorInterval time.Duration `yaml:"janitorInterval"`
	// GCInterval runs garbage collection on a schedule. Default 0: only on
	// demand (atoll gc, POST /_atoll/v1/gc).
	GCInterval time.Duration `yaml:"gcInterval"`
	// GCGrace is the grace period of scheduled collections. Default 1h.
	GCGrace time.Duration `yaml:"gcGrace"`
	// Retention prunes tags and untagged manifests before each collection.
	Retention []RetentionPolicy `yaml:"retention"`
	// ShutdownTimeout bounds the graceful drain on stop. Default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`
}

func (c *Config) applyDefaults() error {
	if c.Addr == "" {
		c.Addr = ":5000"
	}
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.JanitorInterval <= 0 {
		c.JanitorInterval = 10 * time.Minute
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.GCGrace <= 0 {
		c.GCGrace = DefaultGCGrace
	}
	if c.Storage.CacheSize <= 0 {
		c.Storage.CacheSize = 10 << 30
	}
	if c.Cluster.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node name: %w", err)
		}
		c.Cluster.NodeName = h
	}
	return c.Cluster.applyDefaults(c.Addr)
}

// TLSConfig is registry:2's http.tls.
type TLSConfig struct {
	// Certificate and Key are PEM files, reloaded when they change.
	Certificate string `yaml:"certificate"`
	Key         string `yaml:"key"`
	// ClientCAs, when set, require client certificates signed by one of
	// these CAs (PEM files).
	ClientCAs []string `yaml:"clientcas"`
}

// StorageConfig selects where blobs live. Metadata is always in DataDir.
type StorageConfig struct {
	// S3, when set, keeps blobs in an S3-compatible bucket. Members given
	// the same bucket share one copy of each blob. Default: blobs in
	// DataDir.
	S3 *s3.Config `yaml:"s3"`
	// CacheSize bounds the local disk cache of blobs read from the bucket,
	// in bytes. Default 10 GiB.
	CacheSize int64 `yaml:"cachesize"`
}

var errUnsupported = errors.ErrUnsupported

// localStore is what a member needs of its own blob store.
type localStore interface {
	storage.BlobStore
	storage.BlobWalker
	storage.UsageReporter
	// Check reports whether the store accepts writes.
	Check(ctx context.Context) error
}

// Node is a member.
type Node struct {
	cfg       Config
	log       *slog.Logger
	name      string
	meta      *metadb.Store
	local     localStore
	blobs     clusterBlobs
	cache     *blobCache // blobs read from a bucket; nil on local disk
	reg       *api.Registry
	notify    *notify.Notifier
	auth      *auth.Authenticator // nil: no authentication
	scheme    string              // of this member's and the others' HTTP APIs
	metrics   *metrics
	handler   http.Handler
	retention retention

	// Cluster state; cluster is nil for a member on its own.
	cluster       *peer.Cluster
	views         views
	followers     *followers
	changed       chan struct{}
	rebalanceKick chan struct{}
	settle        time.Duration // wait after a membership change before rebalancing
	token         string
	client        *http.Client // member to member: forwarded uploads, gc
	blobClient    *http.Client // proxied blob reads: a frozen member fails fast
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
		cfg:           cfg,
		log:           log,
		name:          cfg.Cluster.NodeName,
		metrics:       newMetrics(),
		changed:       make(chan struct{}, 1),
		rebalanceKick: make(chan struct{}, 1),
		settle:        2 * time.Second,
		scheme:        "http",
		token:         HTTPToken(cfg.Cluster.Secret),
		client:        &http.Client{Transport: memberTransport(0)},
		blobClient:    &http.Client{Transport: memberTransport(3 * time.Second)},
	}
	if cfg.TLS.Certificate != "" {
		n.scheme = "https"
	}
	var err error
	if n.retention, err = compileRetention(cfg.Retention); err != nil {
		return nil, err
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
	if cfg.Cluster.Fast {
		n.settle = 200 * time.Millisecond
	}
	local, err := openBlobStore(cfg)
	if err != nil {
		return nil, err
	}
	n.local, n.blobs = local, clusterBlobs{BlobStore: local, n: n}
	var apiBlobs storage.BlobStore = local
	if cfg.Storage.S3 != nil {
		if n.cache, err = newBlobCache(context.Background(), local, filepath.Join(cfg.DataDir, "cache"), cfg.Storage.CacheSize); err != nil {
			return nil, err
		}
		apiBlobs = sharedBlobs{BlobStore: local, n: n}
	}
	opts := metadb.Options{Origin: n.name}
	if cfg.Cluster.Enabled {
		opts.Replicate = n.replicate
	}
	if n.meta, err = metadb.Open(filepath.Join(cfg.DataDir, "metadata.db"), opts); err != nil {
		return nil, err
	}
	if n.notify, err = notify.New(cfg.Notifications, cfg.DataDir, log); err != nil {
		_ = n.meta.Close()
		return nil, err
	}
	deps := api.Deps{Blobs: apiBlobs, Meta: n.meta, Logger: log}
	if n.auth != nil {
		deps.Visible, deps.Actor = n.visible, n.actor
	}
	if len(n.notify.Stats()) > 0 {
		deps.Events = n.notify
	}
	if cfg.Cluster.Enabled {
		n.followers = newFollowers(n)
		deps.Remote, deps.NewUploadID = n, n.newUploadID
		if n.cache == nil {
			deps.Blobs = n.blobs // local disks: a commit places the blob on its owners
		}
		n.cluster, err = peer.New(cfg.Cluster.Config, peer.Deps{
			Metadata: n.meta, Blobs: peerBlobs{n}, Events: n, Logger: log,
		})
		if err != nil {
			_ = n.notify.Close()
			_ = n.meta.Close()
			return nil, err
		}
		n.refreshView()
	}
	if cfg.PullThrough.Enabled() {
		if deps.Upstream, err = pullthrough.New(cfg.PullThrough, pullthrough.Deps{Blobs: deps.Blobs, Meta: n.meta, Logger: log}); err != nil {
			_ = n.Close()
			return nil, err
		}
	}
	n.reg = api.New(cfg.API, deps)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", n.healthz)
	mux.HandleFunc("GET /readyz", n.readyz)
	mux.HandleFunc("GET /_atoll/v1/cluster", n.serveStatus)
	mux.HandleFunc("GET /_atoll/v1/blobs/{digest}", n.serveLocalBlob)
	mux.HandleFunc("POST /_atoll/v1/gc", n.serveGC)
	mux.Handle("/ui/", ui.Handler())
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	var registry http.Handler = n.reg
	if n.auth != nil {
		registry = n.memberIdentity(n.auth.Wrap(n.reg))
		mux.Handle(auth.TokenPath, n.auth.TokenHandler())
	}
	if len(cfg.Headers) > 0 {
		registry = withHeaders(cfg.Headers, registry)
	}
	mux.Handle("/v2/", n.instrument(registry))
	mux.Handle("/v1/search", n.instrument(registry))
	n.metrics.watch(n)
	n.handler = mux
	return n, nil
}

// openBlobStore opens the configured blob store.
func openBlobStore(cfg Config) (localStore, error) {
	if cfg.Storage.S3 != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return s3.New(ctx, *cfg.Storage.S3)
	}
	return filesystem.New(cfg.DataDir)
}

// Handler serves the registry and the member's own endpoints.
func (n *Node) Handler() http.Handler { return n.handler }

// Close releases the storage and leaves the cluster without handing off.
func (n *Node) Close() error {
	var errs []error
	if n.cluster != nil {
		errs = append(errs, n.cluster.Close())
	}
	return errors.Join(append(errs, n.notify.Close(), n.meta.Close())...)
}

// Run serves until ctx is done, then drains in-flight requests and, in a
// cluster, hands its blobs to their other owners and leaves.
func (n *Node) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", n.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", n.cfg.Addr, err)
	}
	return n.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened.
func (n *Node) Serve(ctx context.Context, ln net.Listener) error {
	srv := newServer(n.handler)
	if n.cfg.TLS.Certificate != "" {
		certs, err := NewCertReloader(n.cfg.TLS.Certificate, n.cfg.TLS.Key)
		if err != nil {
			return err
		}
		if srv.TLSConfig, err = certs.TLSConfig(n.cfg.TLS.ClientCAs...); err != nil {
			return err
		}
	}
	errc := make(chan error, 2)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	var debug *http.Server
	if n.cfg.DebugAddr != "" {
		debug = newServer(n.metrics.debugHandler())
		dl, err := net.Listen("tcp", n.cfg.DebugAddr)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("listen %s: %w", n.cfg.DebugAddr, err)
		}
		go func() { errc <- debug.Serve(dl) }()
	}
	n.log.Info("serving registry", "addr", ln.Addr().String(), "data", n.cfg.DataDir,
		"node", n.name, "cluster", n.cluster != nil, "debug", n.cfg.DebugAddr)

	bg, stopBackground := context.WithCancel(ctx)
	var wg sync.WaitGroup
	n.startBackground(bg, &wg)
	defer func() { stopBackground(); wg.Wait() }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	n.log.Info("shutting down", "timeout", n.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if debug != nil {
		_ = debug.Shutdown(sctx)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	stopBackground()
	wg.Wait()
	return errors.Join(err, n.handOff(sctx))
}

func (n *Node) startBackground(ctx context.Context, wg *sync.WaitGroup) {
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	run(n.janitor)
	run(n.notify.Run)
	if n.cfg.GCInterval > 0 {
		run(n.gcLoop)
	}
	if n.cluster == nil {
		return
	}
	n.cluster.Start()
	run(n.watchMembership)
	run(n.antiEntropy)
	run(n.rebalanceLoop)
	run(n.announceStats)
	n.MembershipChanged()
}

// handOff, on a graceful stop, copies every held blob to its owners among
// the other members, then leaves the cluster.
func (n *Node) handOff(ctx context.Context) error {
	if n.cluster == nil {
		return nil
	}
	v := n.views.load()
	others := v.ring.Without(n.name)
	if others.Len() > 0 {
		n.log.Info("handing off blobs before leaving", "to", others.Members())
		if err := n.rebalance(ctx, &view{self: n.name, members: v.members, ring: others}, false); err != nil {
			n.log.Warn("hand-off incomplete", "err", err)
		}
	}
	return n.cluster.Leave(5 * time.Second)
}

// withHeaders adds fixed headers to every response of h.
func withHeaders(headers http.Header, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range headers {
			w.Header()[http.CanonicalHeaderKey(k)] = v
		}
		h.ServeHTTP(w, r)
	})
}

// memberTransport pools connections to other members. A member that
// accepts connections but does not answer (frozen, overloaded) fails a
// request after headerTimeout, when set, so the caller tries another.
func memberTransport(headerTimeout time.Duration) *http.Transport {
	return &http.Transport{
		// Members' certificates name the registry's public host, not the
		// addresses members use; the cluster token authenticates them.
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
		DialContext:           (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: headerTimeout,
	}
}

func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
	}
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

func (n *Node) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz answers 200 when the storage accepts writes and, in a cluster with
// a join list, the member has joined.
func (n *Node) readyz(w http.ResponseWriter, r *http.Request) {
	if err := n.local.Check(r.Context()); err != nil {
		http.Error(w, "storage not writable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if n.cluster != nil && len(n.cfg.Cluster.Join) > 0 && !n.cluster.Joined() {
		http.Error(w, "not joined to the cluster yet", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("ready\n"))
}

func randRead(b []byte) (int, error) { return rand.Read(b) }
