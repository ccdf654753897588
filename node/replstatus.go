package node

import (
	"encoding/json"
	"net/http"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/node/pullthrough"
	"github.com/atollhq/atoll/node/replication"
)

// ReplicationStatus is the answer of GET /_atoll/v1/replication: the
// replication rules and pull-through upstreams as this member runs them
// (each member queues the pushes it acknowledged and does the work of the
// repositories and blobs it owns, so counts are this member's).
type ReplicationStatus struct {
	Member    string                       `json:"member"`
	Rules     []replication.RuleStatus     `json:"rules"`
	Upstreams []pullthrough.UpstreamStatus `json:"upstreams"`
}

// serveReplication answers GET /_atoll/v1/replication for member self: r
// is its replicator (nil without rules), up the registry's pull-through
// cache, if any.
func serveReplication(self string, r *replication.Replicator, up api.Upstream) http.HandlerFunc {
	cache, _ := up.(*pullthrough.Cache)
	return func(w http.ResponseWriter, _ *http.Request) {
		s := ReplicationStatus{Member: self, Rules: []replication.RuleStatus{}, Upstreams: []pullthrough.UpstreamStatus{}}
		if r != nil {
			s.Rules = r.Status()
		}
		if cache != nil {
			s.Upstreams = cache.Status()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	}
}
