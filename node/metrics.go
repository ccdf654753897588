package node

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/node/notify"
	"github.com/atollhq/atoll/storage/diskspace"
)

// metrics are the member's Prometheus metrics, on a registry of its own;
// every name starts with atoll_.
type metrics struct {
	reg             *prometheus.Registry
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	bytesIn         *prometheus.CounterVec
	bytesOut        *prometheus.CounterVec
	blobRoutes      *prometheus.CounterVec
	uploadForwards  prometheus.Counter
	blobsCopied     prometheus.Counter
	bytesCopied     prometheus.Counter
	rebalances      prometheus.Counter
	gcFreed         prometheus.Counter
	scrubBytes      prometheus.Counter
	scrubBad        *prometheus.CounterVec
	scrubBadRecords *prometheus.CounterVec
	scrubFinished   prometheus.Gauge
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func newMetrics() (*metrics, error) {
	m := &metrics{
		reg:      prometheus.NewRegistry(),
		requests: counterVec("atoll_http_requests_total", "Registry API requests by route, method and status.", "route", "method", "status"),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "atoll_http_request_duration_seconds",
			Help:    "Registry API request latency by route and method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"route", "method"}),
		bytesIn:        counterVec("atoll_http_request_bytes_total", "Bytes received in request bodies, by route.", "route"),
		bytesOut:       counterVec("atoll_http_response_bytes_total", "Bytes sent in response bodies, by route.", "route"),
		blobRoutes:     counterVec("atoll_blob_routed_total", "Blob reads served from another member, by proxy or redirect.", "mode"),
		uploadForwards: counter("atoll_upload_forwards_total", "Upload requests forwarded to the member holding the session."),
		blobsCopied:    counter("atoll_blob_copies_total", "Blobs copied to other members (placement and rebalancing)."),
		bytesCopied:    counter("atoll_blob_copied_bytes_total", "Bytes of blobs copied to other members."),
		rebalances:     counter("atoll_rebalances_total", "Rebalance passes over the blobs held here."),
		gcFreed:        counter("atoll_gc_freed_blobs_total", "Blobs deleted by garbage collection on this member."),
		scrubBytes:     counter("atoll_scrub_read_bytes_total", "Bytes of blobs read back by scrubs on this member."),
		scrubBad: counterVec("atoll_scrub_bad_blobs_total",
			"Bad copies of blobs found by scrubs on this member, by outcome: repaired (from another member), lost (no good copy anywhere), unrepaired (copying one failed for now).", "outcome"),
		scrubBadRecords: counterVec("atoll_scrub_bad_manifest_records_total",
			"Bad manifest records found by scrubs in this member's metadata, by outcome: repaired (from another member), lost (no good copy anywhere), unrepaired (fetching one failed for now).", "outcome"),
		scrubFinished: prometheus.NewGauge(prometheus.GaugeOpts{Name: "atoll_scrub_last_finished_timestamp_seconds",
			Help: "When the last scrub of this member's blobs read them all (Unix time); 0: none since the start."}),
	}
	err := register(m.reg, m.requests, m.duration, m.bytesIn, m.bytesOut, m.blobRoutes, m.uploadForwards,
		m.blobsCopied, m.bytesCopied, m.rebalances, m.gcFreed, m.scrubBytes, m.scrubBad, m.scrubBadRecords, m.scrubFinished,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m, err
}

// register registers every collector with reg, or says which it could not
// (a name registered twice).
func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	var errs []error
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			errs = append(errs, fmt.Errorf("metrics: %w", err))
		}
	}
	return errors.Join(errs...)
}

// watch exports gauges read from the member at scrape time.
func (m *metrics) watch(n *Node) error {
	var errs []error
	gauge := func(name, help string, f func() float64) {
		errs = append(errs, register(m.reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)))
	}
	gauge("atoll_blobs_stored", "Blobs held on this member.", func() float64 { b, _ := n.local.Usage(); return float64(b) })
	gauge("atoll_blob_bytes_stored", "Bytes of the blobs held on this member.", func() float64 { _, b := n.local.Usage(); return float64(b) })
	if pb, ok := n.local.(interface{ PartBuffers() (int, int) }); ok { // S3
		gauge("atoll_upload_parts_in_memory", "Upload parts held in memory, within the member's budget (S3).",
			func() float64 { m, _ := pb.PartBuffers(); return float64(m) })
		gauge("atoll_upload_parts_spilled", "Upload parts past the member's memory budget, in spill files on local disk (S3).",
			func() float64 { _, s := pb.PartBuffers(); return float64(s) })
	}
	if n.refetch != nil {
		gauge("atoll_scrub_refetch_waiting", "Bad copies a scrub moved aside here that wait for a good copy from another member (fetched again every minute).",
			func() float64 { return float64(n.refetch.wanted()) })
	}
	gauge("atoll_uploads_in_flight", "Open upload sessions on this member.", func() float64 {
		u, _ := n.meta.ListUploads()
		return float64(len(u))
	})
	space := func(f func(diskspace.Space) uint64) func() float64 {
		return func() float64 {
			sp, err := diskspace.Stat(n.cfg.DataDir)
			if err != nil {
				return math.NaN()
			}
			return float64(f(sp))
		}
	}
	gauge("atoll_storage_free_bytes", "Free bytes on the filesystem of the data directory.", space(func(s diskspace.Space) uint64 { return s.Free }))
	gauge("atoll_storage_size_bytes", "Size in bytes of the filesystem of the data directory.", space(func(s diskspace.Space) uint64 { return s.Total }))
	gauge("atoll_repositories", "Repositories in the catalog.", func() float64 { return float64(len(n.meta.Repositories("", 0))) })
	for _, q := range n.rules.quotas.Report(nil).Quotas {
		labels := prometheus.Labels{"quota": q.Name}
		used := func() float64 {
			for _, u := range n.rules.quotas.Report(nil).Quotas {
				if u.Name == q.Name {
					return float64(u.Bytes)
				}
			}
			return math.NaN()
		}
		errs = append(errs, register(m.reg,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "atoll_quota_used_bytes", Help: "Distinct bytes of the blobs and manifests a quota's repositories hold, cluster-wide.", ConstLabels: labels}, used),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "atoll_quota_limit_bytes", Help: "A quota's limit in bytes.", ConstLabels: labels},
				func() float64 { return float64(q.LimitBytes) }),
		))
	}
	for name := range n.notify.Stats() {
		labels := prometheus.Labels{"endpoint": name}
		stat := func() notify.EndpointStats { return n.notify.Stats()[name] }
		errs = append(errs, register(m.reg,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "atoll_notifications_pending", Help: "Events queued for a webhook.", ConstLabels: labels},
				func() float64 { return float64(stat().Pending) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "atoll_notifications_delivered_total", Help: "Events delivered to a webhook.", ConstLabels: labels},
				func() float64 { return float64(stat().Delivered) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "atoll_notifications_failures_total", Help: "Failed webhook requests.", ConstLabels: labels},
				func() float64 { return float64(stat().Failed) }),
		))
	}
	if n.cluster != nil {
		gauge("atoll_cluster_members_alive", "Live members in this member's view.", func() float64 {
			return float64(len(n.views.load().peers()) + 1)
		})
		gauge("atoll_metadata_replication_lag", "Batches of this member's log the slowest live peer has not acknowledged.", func() float64 {
			return float64(n.metasync.Lag())
		})
	}
	return errors.Join(errs...)
}

// instrument counts, times and (at debug level) logs every request to h,
// giving it a request id unless a proxying member already did.
func (n *Node) instrument(h http.Handler) http.Handler {
	m := n.metrics
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(api.RequestIDHeader)
		if id == "" {
			b := make([]byte, 8)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
			r.Header.Set(api.RequestIDHeader, id)
		}
		w.Header().Set(api.RequestIDHeader, id)
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		body := &countingReader{r: r.Body}
		r.Body = body
		h.ServeHTTP(sw, r)
		route := routeOf(r.URL.Path)
		elapsed := time.Since(start)
		m.requests.WithLabelValues(route, r.Method, strconv.Itoa(sw.status)).Inc()
		m.duration.WithLabelValues(route, r.Method).Observe(elapsed.Seconds())
		m.bytesIn.WithLabelValues(route).Add(float64(body.n))
		m.bytesOut.WithLabelValues(route).Add(float64(sw.n))
		if n.log.Enabled(r.Context(), slog.LevelDebug) { // spare the hot path building the record
			n.log.Debug("request", "id", id, "method", r.Method, "path", r.URL.Path, "status", sw.status,
				"in", body.n, "out", sw.n, "took", elapsed, "remote", r.RemoteAddr)
		}
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

// statusWriter records the status code and counts body bytes. It forwards
// ReadFrom, so a copy into it still reaches the connection's own ReadFrom:
// a blob's bytes leave through sendfile (api.ServeBlobContent) and are
// counted here.
type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(w.ResponseWriter, r)
	w.n += n
	return n, err
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countingReader counts the bytes read from a request body.
type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }
