package node

import (
	"context"
	"net/http"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/node/route"
	"github.com/atollhq/atoll/peer"
	"github.com/atollhq/atoll/storage"
)

// Request routing between members is package route's; this file wires it
// to the member: the view of the cluster it consults, the blobs it serves
// other members, and the member token every member-to-member endpoint
// checks (trusted).

// tokenHeader carries the member token on member-to-member HTTP requests.
const tokenHeader = route.TokenHeader

// HTTPToken derives the member-to-member HTTP token from the secret; the
// atoll CLI sends it for cluster-wide operations.
func HTTPToken(secret string) string { return route.Token(secret) }

// newRouter returns the member's router.
func (n *Node) newRouter() *route.Router {
	deps := route.Deps{
		Blobs:     blobOpener(n.blobs.ReadLocal),
		Logger:    n.log,
		Routed:    n.metrics.blobRoutes,
		Forwarded: n.metrics.uploadForwards,
	}
	if n.auth != nil {
		deps.Access = n.auth
	}
	if n.cluster != nil {
		deps.Members = routeMembers{views: &n.views, cluster: n.cluster}
	}
	return route.New(route.Config{
		Self:   n.name,
		Mode:   n.cfg.Cluster.Routing,
		Scheme: n.members.scheme,
		Secret: n.cfg.Cluster.Secret,
	}, deps)
}

// trusted reports whether r comes from a member (route.Router.Trusted) or
// from an administrator on an endpoint that admin guards (admin.go).
func (n *Node) trusted(r *http.Request) bool {
	return byAdmin(r) || n.router.Trusted(r)
}

// memberOnly serves h to other members of a cluster only: requests with
// the member token (trusted).
func memberOnly(clustered bool, trusted func(*http.Request) bool, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !clustered || !trusted(r) {
			http.Error(w, "cluster token required", http.StatusUnauthorized)
			return
		}
		h(w, r)
	})
}

// uploadMember returns the member named in an upload id, or "".
func uploadMember(id string) string { return route.UploadMember(id) }

// routeMembers implements route.Members over the member's view.
type routeMembers struct {
	views   *views
	cluster *peer.Cluster
}

func (m routeMembers) Preference(d digest.Digest) []string { return m.views.load().preference(d) }

func (m routeMembers) Addr(name string) (string, bool) {
	v := m.views.load()
	return v.members[name].HTTP, v.live(name)
}

func (m routeMembers) Has(ctx context.Context, member string, ds []digest.Digest) ([]bool, error) {
	return m.cluster.Client().Has(ctx, member, ds)
}

// blobOpener adapts a function to route.Blobs.
type blobOpener func(ctx context.Context, d digest.Digest) (storage.Blob, error)

func (f blobOpener) Open(ctx context.Context, d digest.Digest) (storage.Blob, error) {
	return f(ctx, d)
}
