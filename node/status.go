package node

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/atollhq/atoll/peer"
)

// Status is the answer of GET /_atoll/v1/cluster.
type Status struct {
	Node     string         `json:"node"`
	Replicas int            `json:"replicas"`
	Routing  string         `json:"routing"`
	Members  []MemberStatus `json:"members"`
}

// MemberStatus is one member in Status.
type MemberStatus struct {
	Name  string `json:"name"`
	HTTP  string `json:"http"`
	GRPC  string `json:"grpc"`
	State string `json:"state"` // alive, suspect, dead or left
	Blobs int64  `json:"blobs"` // layer and config blobs held
	Bytes int64  `json:"bytes"`
}

// statusReport reports the member's view of the cluster.
type statusReport struct {
	base  Status // this member's settings
	addr  string // its HTTP address, on its own
	views *views // the members; empty on its own
	held  func() (blobs, bytes int64)
}

func newStatusReport(cfg Config, vs *views, held func() (int64, int64)) statusReport {
	return statusReport{
		base:  Status{Node: cfg.Cluster.NodeName, Replicas: cfg.Cluster.Placement.Replicas, Routing: cfg.Cluster.Routing},
		addr:  cfg.Addr,
		views: vs,
		held:  held,
	}
}

// status reports this member's view of the cluster.
func (sr statusReport) status() Status {
	blobs, bytes := sr.held()
	s := sr.base
	v := sr.views.load()
	if v == nil {
		s.Replicas = 1
		s.Members = []MemberStatus{{Name: s.Node, HTTP: sr.addr, State: peer.StateAlive, Blobs: blobs, Bytes: bytes}}
		return s
	}
	for _, m := range v.members {
		ms := MemberStatus{Name: m.Name, HTTP: m.HTTP, GRPC: m.GRPC, State: m.State, Blobs: m.Blobs, Bytes: m.Bytes}
		if m.Name == s.Node {
			ms.Blobs, ms.Bytes = blobs, bytes
		}
		s.Members = append(s.Members, ms)
	}
	sort.Slice(s.Members, func(i, j int) bool { return s.Members[i].Name < s.Members[j].Name })
	return s
}

func (sr statusReport) serve(w http.ResponseWriter, _ *http.Request) {
	body, err := json.MarshalIndent(sr.status(), "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(body, '\n'))
}

// announceStats keeps the blob counts other members see of this one
// (held) fresh.
func announceStats(ctx context.Context, c *peer.Cluster, held func() (blobs, bytes int64)) {
	every(ctx, time.Second, true, func(context.Context) { c.SetStats(held()) })
}
