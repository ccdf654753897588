package node

import (
	"io"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the member's Prometheus metrics, on a registry of its own.
type metrics struct {
	reg            *prometheus.Registry
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	blobRoutes     *prometheus.CounterVec
	uploadForwards prometheus.Counter
	blobsCopied    prometheus.Counter
	bytesCopied    prometheus.Counter
	rebalances     prometheus.Counter
	gcFreed        prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_http_requests_total",
			Help: "Registry API requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "atoll_http_request_duration_seconds",
			Help:    "Registry API request latency by route and method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"route", "method"}),
	}
	m.blobRoutes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "atoll_blob_routed_total",
		Help: "Blob reads served from another member, by proxy or redirect.",
	}, []string{"mode"})
	m.uploadForwards = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "atoll_upload_forwards_total",
		Help: "Upload requests forwarded to the member holding the session.",
	})
	m.blobsCopied = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "atoll_blob_copies_total",
		Help: "Blobs copied to other members (placement and rebalancing).",
	})
	m.bytesCopied = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "atoll_blob_copied_bytes_total",
		Help: "Bytes of blobs copied to other members.",
	})
	m.rebalances = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "atoll_rebalances_total",
		Help: "Rebalance passes over the blobs held here.",
	})
	m.gcFreed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "atoll_gc_freed_blobs_total",
		Help: "Blobs deleted by garbage collection on this member.",
	})
	m.reg.MustRegister(m.requests, m.duration, m.blobRoutes, m.uploadForwards, m.blobsCopied, m.bytesCopied, m.rebalances, m.gcFreed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// instrument counts and times every request to h.
func (m *metrics) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		route := routeOf(r.URL.Path)
		m.requests.WithLabelValues(route, r.Method, strconv.Itoa(sw.status)).Inc()
		m.duration.WithLabelValues(route, r.Method).Observe(time.Since(start).Seconds())
	})
}

// routeOf names the API route of a path without the repository name, so
// label cardinality stays bounded.
func routeOf(path string) string {
	switch {
	case path == "/v2/" || path == "/v2":
		return "base"
	case path == "/v2/_catalog":
		return "catalog"
	case strings.Contains(path, "/blobs/uploads/"):
		return "uploads"
	case strings.Contains(path, "/blobs/"):
		return "blobs"
	case strings.Contains(path, "/manifests/"):
		return "manifests"
	case strings.HasSuffix(path, "/tags/list"):
		return "tags"
	case strings.Contains(path, "/referrers/"):
		return "referrers"
	}
	return "other"
}

func (m *metrics) debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	return mux
}

// statusWriter records the status code. It forwards ReadFrom so sendfile
// still applies to blob downloads.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(w.ResponseWriter, r)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
