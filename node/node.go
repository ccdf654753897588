// Package node is one registry member: it opens the local storage, serves
// the registry API with health and metrics endpoints, and runs background
// housekeeping. In a cluster it also routes requests to the member owning
// them; without peers it is a complete single-node registry.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/storage/filesystem"
	"github.com/atollhq/atoll/storage/metadb"
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
	// JanitorInterval is how often expired uploads are purged. Default 10m.
	JanitorInterval time.Duration `yaml:"janitorInterval"`
	// ShutdownTimeout bounds the graceful drain on stop. Default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`
}

func (c *Config) applyDefaults() {
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
}

// Node is a running member.
type Node struct {
	cfg     Config
	log     *slog.Logger
	meta    *metadb.Store
	blobs   *filesystem.Store
	reg     *api.Registry
	metrics *metrics
	handler http.Handler
}

// New opens the member's storage. Close releases it.
func New(cfg Config, log *slog.Logger) (*Node, error) {
	cfg.applyDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	blobs, err := filesystem.New(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	meta, err := metadb.Open(filepath.Join(cfg.DataDir, "metadata.db"), metadb.Options{})
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: log, meta: meta, blobs: blobs, metrics: newMetrics()}
	n.reg = api.New(cfg.API, api.Deps{Blobs: blobs, Meta: meta, Logger: log})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", n.healthz)
	mux.HandleFunc("GET /readyz", n.readyz)
	mux.Handle("/v2/", n.metrics.instrument(n.reg))
	n.handler = mux
	return n, nil
}

// Handler serves the registry, /healthz and /readyz.
func (n *Node) Handler() http.Handler { return n.handler }

// Close releases the storage.
func (n *Node) Close() error { return n.meta.Close() }

// Run serves until ctx is done, then drains in-flight requests.
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
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
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
	n.log.Info("serving registry", "addr", ln.Addr().String(), "data", n.cfg.DataDir, "debug", n.cfg.DebugAddr)
	janitorDone := make(chan struct{})
	jctx, stopJanitor := context.WithCancel(ctx)
	go func() { defer close(janitorDone); n.janitor(jctx) }()
	defer func() { stopJanitor(); <-janitorDone }()

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
	return err
}

func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
	}
}

// janitor purges abandoned uploads now and then.
func (n *Node) janitor(ctx context.Context) {
	t := time.NewTicker(n.cfg.JanitorInterval)
	defer t.Stop()
	for {
		expired, err := n.reg.ExpireUploads(ctx, time.Now())
		if err != nil && ctx.Err() == nil {
			n.log.Warn("expiring uploads", "err", err)
		} else if expired > 0 {
			n.log.Info("expired abandoned uploads", "count", expired)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz answers 200 when the storage accepts writes.
func (n *Node) readyz(w http.ResponseWriter, r *http.Request) {
	if err := n.blobs.Check(r.Context()); err != nil {
		http.Error(w, "storage not writable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("ready\n"))
}
