package node

import (
	"net/http"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/node/pullthrough"
)

// The pull-through cache in a cluster: each upstream fetch is done by the
// ring owner of its key (a blob's digest), which the other members ask
// through pullthrough.MemberPath with the cluster token.

// servePullThrough registers the members' endpoint of the cache, if any,
// behind fromMember.
func servePullThrough(mux *http.ServeMux, up api.Upstream, fromMember func(http.HandlerFunc) http.Handler) {
	c, ok := up.(*pullthrough.Cache)
	if !ok {
		return
	}
	mux.Handle("POST "+pullthrough.MemberPath, fromMember(c.MemberHandler().ServeHTTP))
}

// cacheMembers implements pullthrough.Members over the member's view.
type cacheMembers struct {
	self    string
	views   *views
	members *memberClient
}

func (cm cacheMembers) Owner(key digest.Digest) (string, bool) {
	v := cm.views.load()
	owners := v.ring.Owners(key, 1)
	if len(owners) == 0 || owners[0] == cm.self {
		return "", true
	}
	base, ok := cm.members.url(owners[0])
	if !ok || !v.live(owners[0]) {
		return "", true
	}
	return base, false
}

func (cm cacheMembers) Do(req *http.Request) (*http.Response, error) { return cm.members.do(req) }
