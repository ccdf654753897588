package node

import (
	"net/http"

	"github.com/atollhq/atoll/api/auth"
)

// visibleTo reports whether the request's client may pull repo, by a:
// the catalog and search list only those.
func visibleTo(a *auth.Authenticator) func(r *http.Request, repo string) bool {
	return func(r *http.Request, repo string) bool {
		id, ok := auth.FromContext(r.Context())
		if !ok {
			id = auth.Identity{Anonymous: true}
		}
		return a.Allowed(id, repo, auth.ActionPull)
	}
}

// actor names the request's client in events.
func actor(r *http.Request) string {
	id, _ := auth.FromContext(r.Context())
	return id.User
}
