package replication

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestFailures: every failure counts in the metric Status reads; only one
// with an error replaces the rule's latest, and rules do not mix.
func TestFailures(t *testing.T) {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &failures{counter: m.failures}
	if _, ok := f.last("a"); ok {
		t.Fatal("a latest failure before any")
	}
	f.record("a", errors.New("first"))
	f.record("a", nil)
	f.record("a", errors.New("second"))
	f.record("b", errors.New("other"))
	if e, ok := f.last("a"); !ok || e.msg != "second" || e.at.IsZero() {
		t.Errorf("latest of a = %+v, %v; want second", e, ok)
	}
	if got := value(f.counter, prometheus.Labels{"rule": "a"}); got != 3 {
		t.Errorf("failures of a = %v, want 3", got)
	}
	if got := value(f.counter, prometheus.Labels{"rule": "b"}); got != 1 {
		t.Errorf("failures of b = %v, want 1", got)
	}
}
