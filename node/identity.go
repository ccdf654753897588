package node

import (
	"encoding/base64"
	"encoding/json"
	"net/http"

	"github.com/atollhq/atoll/api/auth"
)

// A request a member forwards to another (an upload session held there)
// carries the client's identity, vouched for by the cluster token; the
// receiving member checks the identity's access again before serving it.

// identityHeader carries the identity of a forwarded request's client.
const identityHeader = "Atoll-Identity"

func encodeIdentity(id auth.Identity) string {
	b, _ := json.Marshal(id)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeIdentity(s string) (auth.Identity, bool) {
	var id auth.Identity
	b, err := base64.RawURLEncoding.DecodeString(s)
	return id, err == nil && json.Unmarshal(b, &id) == nil
}

// memberIdentity serves requests forwarded by members as their client,
// after checking that client's access here, and passes the rest to next.
func (n *Node) memberIdentity(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get(identityHeader)
		if h == "" {
			next.ServeHTTP(w, r)
			return
		}
		id, ok := decodeIdentity(h)
		if !ok || n.token == "" || !n.trusted(r) {
			writeDenied(w, http.StatusUnauthorized, "UNAUTHORIZED", "forwarded identity without a valid cluster token")
			return
		}
		for _, s := range auth.Scopes(r) {
			for _, action := range s.Actions {
				if !n.auth.Allowed(id, s.Repository, action) {
					writeDenied(w, http.StatusForbidden, "DENIED", "requested access to the resource is denied")
					return
				}
			}
		}
		next.ServeHTTP(w, r.WithContext(auth.ContextWithIdentity(r.Context(), id)))
	})
}

func writeDenied(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

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
