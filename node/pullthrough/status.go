package pullthrough

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// UpstreamStatus is one upstream as this member sees it, for the
// operator's /_atoll/v1/replication and the UI. Counts are this member's
// since it started, by kind (manifest, blob; token for requests), read
// from the cache's metrics so they agree with /metrics; routes to the same
// host share them.
type UpstreamStatus struct {
	Prefix   string `json:"prefix"` // "" for the proxy section (every other repository)
	Upstream string `json:"upstream"`
	TTL      string `json:"ttl"`
	// Hits are pulls answered from what is cached, Misses pulls that
	// needed the upstream (here or on the member owning the fetch).
	Hits   map[string]int64 `json:"hits"`
	Misses map[string]int64 `json:"misses"`
	// Requests are the requests this member sent to the upstream.
	Requests      int64 `json:"requests"`
	Forwards      int64 `json:"forwards"`
	LimitWaits    int64 `json:"limitWaits"`
	LimitRefusals int64 `json:"limitRefusals"`
	// RateLimitedUntil is when the upstream's rate limit lifts, if it
	// holds now: no request goes to it before.
	RateLimitedUntil time.Time `json:"rateLimitedUntil,omitzero"`
}

// Status reports every upstream, longest prefix first.
func (c *Cache) Status() []UpstreamStatus {
	out := make([]UpstreamStatus, 0, len(c.routes))
	for _, rt := range c.routes {
		host := rt.client.host
		s := UpstreamStatus{
			Prefix: rt.prefix, Upstream: rt.client.base, TTL: rt.ttl.String(),
			Hits:          byKind(c.m.hits, host),
			Misses:        byKind(c.m.misses, host),
			Requests:      sum(byKind(c.m.requests, host)),
			Forwards:      sum(byKind(c.m.forwards, host)),
			LimitWaits:    sum(byKind(c.m.limitWaits, host)),
			LimitRefusals: sum(byKind(c.m.limitRefusals, host)),
		}
		rt.client.limit.mu.Lock()
		if until := rt.client.limit.until; until.After(time.Now()) {
			s.RateLimitedUntil = until.UTC()
		}
		rt.client.limit.mu.Unlock()
		out = append(out, s)
	}
	return out
}

// byKind sums the series of vec for upstream host by their kind label
// ("" for a vector without one).
func byKind(vec prometheus.Collector, host string) map[string]int64 {
	out := map[string]int64{}
	reg := prometheus.NewRegistry()
	if err := reg.Register(vec); err != nil {
		return out
	}
	families, err := reg.Gather()
	if err != nil {
		return out
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			upstream, kind := "", ""
			for _, p := range m.GetLabel() {
				switch p.GetName() {
				case "upstream":
					upstream = p.GetValue()
				case "kind":
					kind = p.GetValue()
				}
			}
			if upstream == host {
				out[kind] += int64(m.GetCounter().GetValue())
			}
		}
	}
	return out
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
