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

// serveReplication answers GET /_atoll/v1/replication; up is the
// registry's pull-through cache, if any.
func (n *Node) serveReplication(up api.Upstream) http.HandlerFunc {
	cache, _ := up.(*pullthrough.Cache)
	return func(w http.ResponseWriter, _ *http.Request) {
		s := ReplicationStatus{Member: n.name, Rules: []replication.RuleStatus{}, Upstreams: []pullthrough.UpstreamStatus{}}
		if n.replication != nil {
			s.Rules = n.replication.Status()
		}
		if cache != nil {
			s.Upstreams = cache.Status()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	}
}
