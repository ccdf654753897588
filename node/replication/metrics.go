package replication

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the replication metrics, labelled by rule (and direction).
type metrics struct {
	queued    *prometheus.GaugeVec   // push events on disk, not yet sent
	manifests *prometheus.CounterVec // manifests copied
	blobs     *prometheus.CounterVec // blobs copied
	bytes     *prometheus.CounterVec // bytes of blobs copied
	deletes   *prometheus.CounterVec // deletes sent
	failures  *prometheus.CounterVec // failed deliveries and passes
	lastPass  *prometheus.GaugeVec   // end of the last complete pass
	repos     *prometheus.GaugeVec   // repositories of the current pull pass
	reposDone *prometheus.GaugeVec   // of which done
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "atoll_replication_queued",
			Help: "Pushes and deletes queued on this member for a push rule, not yet sent."}, []string{"rule"}),
		manifests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atoll_replication_manifests_total",
			Help: "Manifests copied by replication, by rule and direction."}, []string{"rule", "direction"}),
		blobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atoll_replication_blobs_total",
			Help: "Blobs copied (or found there) by replication, by rule and direction."}, []string{"rule", "direction"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atoll_replication_bytes_total",
			Help: "Bytes of blobs copied by replication, by rule and direction."}, []string{"rule", "direction"}),
		deletes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atoll_replication_deletes_total",
			Help: "Deletes sent to a push rule's remote."}, []string{"rule"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atoll_replication_failures_total",
			Help: "Failed replication deliveries and passes (each retried)."}, []string{"rule"}),
		lastPass: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "atoll_replication_last_pass_timestamp_seconds",
			Help: "When this member last finished a pass of a rule (pull copy, push check)."}, []string{"rule"}),
		repos: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "atoll_replication_pass_repositories",
			Help: "Repositories this member copies in the current pass of a pull rule."}, []string{"rule"}),
		reposDone: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "atoll_replication_pass_repositories_done",
			Help: "Repositories of the current pass of a pull rule copied so far."}, []string{"rule"}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.queued, m.manifests, m.blobs, m.bytes, m.deletes, m.failures, m.lastPass, m.repos, m.reposDone} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, fmt.Errorf("metrics: %w", err))
		}
	}
	return m, errors.Join(errs...)
}
