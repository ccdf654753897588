package replication

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RuleStatus is one rule as this member sees it, for the operator's
// /_atoll/v1/replication and the UI. Counts are this member's since it
// started (each member does the work of the repositories it owns).
type RuleStatus struct {
	Name         string   `json:"name"`
	Direction    string   `json:"direction"`
	Remote       string   `json:"remote"`
	Repositories []string `json:"repositories"`
	Interval     string   `json:"interval"`
	// Queued is, for a push rule, the changes queued on this member and
	// not yet taken by the remote.
	Queued int `json:"queued"`
	// LastPass is when this member last finished a pass (a push rule's
	// check, a pull rule's copy) without an error.
	LastPass time.Time `json:"lastPass,omitzero"`
	// LastError is the latest failure (delivery, check or pass) and when.
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
	Failures    int64     `json:"failures"`
	Manifests   int64     `json:"manifests"`
	Blobs       int64     `json:"blobs"`
	Bytes       int64     `json:"bytes"`
	Deletes     int64     `json:"deletes"`
	// Progress is, for a pull rule, the repositories of the current (or
	// last) pass this member copies, and how many are done.
	Progress *Progress `json:"progress,omitempty"`
}

// Progress is a pull pass's progress.
type Progress struct {
	Repositories int `json:"repositories"`
	Done         int `json:"done"`
}

// failures counts each rule's failures (the failures metric) and keeps
// its latest. Safe for concurrent use.
type failures struct {
	counter *prometheus.CounterVec

	mu   sync.Mutex
	errs map[string]timedError // rule → latest failure
}

type timedError struct {
	msg string
	at  time.Time
}

// record counts a failure of rule and keeps err, if any, as its latest.
func (f *failures) record(rule string, err error) {
	f.counter.WithLabelValues(rule).Inc()
	if err == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.errs == nil {
		f.errs = map[string]timedError{}
	}
	f.errs[rule] = timedError{msg: err.Error(), at: time.Now()}
}

// last returns rule's latest failure.
func (f *failures) last(rule string) (timedError, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.errs[rule]
	return e, ok
}

// Status reports every rule, in configuration order. The counts are read
// from the replication metrics, so they agree with /metrics.
func (r *Replicator) Status() []RuleStatus {
	out := make([]RuleStatus, 0, len(r.rules))
	for _, rl := range r.rules {
		rule := prometheus.Labels{"rule": rl.Name}
		ruleDir := prometheus.Labels{"rule": rl.Name, "direction": rl.Direction}
		s := RuleStatus{
			Name: rl.Name, Direction: rl.Direction, Remote: rl.Remote.URL,
			Repositories: rl.Repositories, Interval: rl.Interval.String(),
			Failures:  int64(value(r.m.failures, rule)),
			Manifests: int64(value(r.m.manifests, ruleDir)),
			Blobs:     int64(value(r.m.blobs, ruleDir)),
			Bytes:     int64(value(r.m.bytes, ruleDir)),
		}
		if t := value(r.m.lastPass, rule); t > 0 {
			s.LastPass = time.Unix(0, int64(t*1e9)).UTC()
		}
		if e, ok := r.fails.last(rl.Name); ok {
			s.LastError, s.LastErrorAt = e.msg, e.at.UTC()
		}
		if rl.Direction == Push {
			s.Deletes = int64(value(r.m.deletes, rule))
			if r.q != nil {
				s.Queued, _ = r.q.Len(rl.Name)
			}
		} else {
			s.Progress = &Progress{
				Repositories: int(value(r.m.repos, rule)),
				Done:         int(value(r.m.reposDone, rule)),
			}
		}
		out = append(out, s)
	}
	return out
}

// value reads the series of vec with labels (0 when it has none yet).
func value(vec prometheus.Collector, labels prometheus.Labels) float64 {
	reg := prometheus.NewRegistry()
	if err := reg.Register(vec); err != nil {
		return 0
	}
	families, err := reg.Gather()
	if err != nil {
		return 0
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if !labelled(m.GetLabel(), labels) {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// labelled reports whether a series' label pairs are exactly labels.
func labelled[P interface {
	GetName() string
	GetValue() string
}](pairs []P, labels prometheus.Labels) bool {
	if len(pairs) != len(labels) {
		return false
	}
	for _, p := range pairs {
		if v, ok := labels[p.GetName()]; !ok || v != p.GetValue() {
			return false
		}
	}
	return true
}
