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

// Status reports this member's view of the cluster.
func (n *Node) Status() Status {
	blobs, bytes := n.blobs.Held()
	s := Status{Node: n.name, Replicas: n.cfg.Cluster.Placement.Replicas, Routing: n.cfg.Cluster.Routing}
	if n.cluster == nil {
		s.Replicas = 1
		s.Members = []MemberStatus{{Name: n.name, HTTP: n.cfg.Addr, State: peer.StateAlive, Blobs: blobs, Bytes: bytes}}
		return s
	}
	for _, m := range n.views.load().members {
		ms := MemberStatus{Name: m.Name, HTTP: m.HTTP, GRPC: m.GRPC, State: m.State, Blobs: m.Blobs, Bytes: m.Bytes}
		if m.Name == n.name {
			ms.Blobs, ms.Bytes = blobs, bytes
		}
		s.Members = append(s.Members, ms)
	}
	sort.Slice(s.Members, func(i, j int) bool { return s.Members[i].Name < s.Members[j].Name })
	return s
}

func (n *Node) serveStatus(w http.ResponseWriter, _ *http.Request) {
	body, err := json.MarshalIndent(n.Status(), "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(body, '\n'))
}

// announceStats keeps the blob counts other members see of this one fresh.
func (n *Node) announceStats(ctx context.Context) {
	every(ctx, time.Second, true, func(context.Context) { n.cluster.SetStats(n.blobs.Held()) })
}
