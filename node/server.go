package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/atollhq/atoll/storage/diskspace"
)

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

// withHeaders adds fixed headers to every response of h.
func withHeaders(headers http.Header, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range headers {
			w.Header()[http.CanonicalHeaderKey(k)] = v
		}
		h.ServeHTTP(w, r)
	})
}

func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
	}
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz answers 200 when the storage accepts writes, the data directory's
// filesystem has more free space than Storage.MinFree and, in a cluster with
// a join list, the member has joined and caught up with the cluster's
// metadata (saying how far it got while it catches up).
func (n *Node) readyz(w http.ResponseWriter, r *http.Request) {
	if err := n.local.Check(r.Context()); err != nil {
		http.Error(w, "storage not writable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if sp, err := diskspace.Stat(n.cfg.DataDir); err == nil {
		if reason, low := n.cfg.Storage.MinFree.Below(sp); low {
			http.Error(w, "storage nearly full: "+reason, http.StatusServiceUnavailable)
			return
		}
	}
	if n.cluster != nil && len(n.cfg.Cluster.Join) > 0 && !n.cluster.Joined() {
		http.Error(w, "not joined to the cluster yet", http.StatusServiceUnavailable)
		return
	}
	if n.cluster != nil && !n.metasync.CaughtUp() {
		reason := "catching up with the cluster's metadata"
		if doing := n.metasync.CatchingUp(); doing != "" {
			reason += ": " + doing
		}
		http.Error(w, reason, http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("ready\n"))
}
