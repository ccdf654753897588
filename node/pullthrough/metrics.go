package pullthrough

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the cache's Prometheus metrics, labelled by upstream host.
type metrics struct {
	requests      *prometheus.CounterVec // requests sent upstream, by kind and status
	hits          *prometheus.CounterVec // pulls answered from what is cached
	misses        *prometheus.CounterVec // pulls that needed the upstream
	forwards      *prometheus.CounterVec // fetches asked of the member owning them
	limitWaits    *prometheus.CounterVec // pulls that waited for a limit to lift
	limitRefusals *prometheus.CounterVec // pulls refused with 429
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	vec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &metrics{
		requests: vec("atoll_pullthrough_upstream_requests_total",
			"Requests this member sent to an upstream, by kind (manifest, blob, token) and status (0: no answer).", "upstream", "kind", "status"),
		hits:     vec("atoll_pullthrough_hits_total", "Pulls of cached repositories answered without the upstream, by kind.", "upstream", "kind"),
		misses:   vec("atoll_pullthrough_misses_total", "Pulls of cached repositories that needed the upstream, by kind.", "upstream", "kind"),
		forwards: vec("atoll_pullthrough_forwards_total", "Upstream fetches asked of the member that owns them.", "upstream", "kind"),
		limitWaits: vec("atoll_pullthrough_limit_waits_total",
			"Upstream requests that waited for the upstream's rate limit to lift.", "upstream"),
		limitRefusals: vec("atoll_pullthrough_limit_refusals_total",
			"Pulls refused with 429 while the upstream's rate limit holds.", "upstream"),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.requests, m.hits, m.misses, m.forwards, m.limitWaits, m.limitRefusals} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, fmt.Errorf("metrics: %w", err))
		}
	}
	return m, errors.Join(errs...)
}
