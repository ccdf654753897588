package node

import (
	"net/http"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/node/pullthrough"
	"github.com/atollhq/atoll/storage"
)

// The pull-through cache in a cluster: each upstream fetch is done by the
// ring owner of its key (a blob's digest), which the other members ask
// through pullthrough.MemberPath with the cluster token.

// pullThroughDeps are the cache's stores, metrics and, in a cluster, its
// way to the members owning fetches.
func (n *Node) pullThroughDeps(blobs storage.BlobStore) pullthrough.Deps {
	d := pullthrough.Deps{Blobs: blobs, Meta: n.meta, Logger: n.log, Metrics: n.metrics.reg}
	if n.cluster != nil {
		d.Members = cacheMembers{n}
	}
	return d
}

// servePullThrough registers the members' endpoint of the cache, if any.
func (n *Node) servePullThrough(mux *http.ServeMux, up api.Upstream) {
	c, ok := up.(*pullthrough.Cache)
	if !ok || n.cluster == nil {
		return
	}
	h := c.MemberHandler()
	mux.Handle("POST "+pullthrough.MemberPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !n.trusted(r) {
			http.Error(w, "cluster token required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
}

// cacheMembers implements pullthrough.Members over the member's view.
type cacheMembers struct{ n *Node }

func (cm cacheMembers) Owner(key digest.Digest) (string, bool) {
	n := cm.n
	v := n.views.load()
	owners := v.ring.Owners(key, 1)
	if len(owners) == 0 || owners[0] == n.name {
		return "", true
	}
	base, ok := n.members.url(owners[0])
	if !ok || !v.live(owners[0]) {
		return "", true
	}
	return base, false
}

func (cm cacheMembers) Do(req *http.Request) (*http.Response, error) { return cm.n.members.do(req) }
