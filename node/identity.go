package node

import (
	"net/http"

	"github.com/atollhq/atoll/api/auth"
)

// visible reports whether the request's client may pull repo: the catalog
// and search list only those.
func (n *Node) visible(r *http.Request, repo string) bool {
	id, ok := auth.FromContext(r.Context())
	if !ok {
		id = auth.Identity{Anonymous: true}
	}
	return n.auth.Allowed(id, repo, auth.ActionPull)
}

// actor names the request's client in events.
func (n *Node) actor(r *http.Request) string {
	id, _ := auth.FromContext(r.Context())
	return id.User
}
