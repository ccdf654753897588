package node

import (
	"context"
	"net/http"
)

// Operators' endpoints. Without authentication they answer as before:
// anyone on a registry open to all, the cluster token when members have a
// secret (trusted). With authentication, the member's own endpoints that an
// operator calls (cluster status, garbage collection) also answer an
// administrator (auth.ActionAdmin) with their own credentials: no
// credentials get 401, a user who is not an administrator 403. The
// member-to-member endpoints (blobs, the GC fence) keep taking the cluster
// token only.

// adminKey marks a request context whose user WrapAdmin let through.
type adminKey struct{}

// admin guards an operator's endpoint: the cluster token, or an
// administrator when authentication is on.
func (n *Node) admin(h http.HandlerFunc) http.Handler {
	if n.auth == nil {
		return h
	}
	asAdmin := n.auth.WrapAdmin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(w, r.WithContext(context.WithValue(r.Context(), adminKey{}, true)))
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.members.token != "" && n.router.Trusted(r) {
			h(w, r)
			return
		}
		asAdmin.ServeHTTP(w, r)
	})
}

// byAdmin reports whether admin let r through as an administrator's.
func byAdmin(r *http.Request) bool {
	ok, _ := r.Context().Value(adminKey{}).(bool)
	return ok
}
