package node

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/node/route"
	"github.com/atollhq/atoll/storage"
)

// The serving gate. A member that joins is not ready until it has applied
// what its peers had (metasync.Replicator.CaughtUp); until then its
// metadata may miss what exists, and answering from it would turn an
// existing image into a 404. So, while it catches up, every registry
// request (reads and writes alike: a write's checks read metadata too) is
// passed whole to a member that is serving, which authenticates and
// answers it as its own; with no such member in reach the answer is 503
// UNAVAILABLE with Retry-After, never a 404. Once caught up, the gate
// passes everything through.

// catchUpHeader marks a request one member passed to another while
// catching up: a member that is itself catching up answers it with 503
// instead of passing it on, so two joining members never bounce a request
// between them, and a serving member streams its blob rather than
// redirect the client, maybe back to the member catching up.
const catchUpHeader = route.PassedOnHeader

// catchUpRetry is the Retry-After, in seconds, of a 503 while catching up.
const catchUpRetry = 1

// catchUpGate passes a member's registry requests on while it catches up.
type catchUpGate struct {
	self       string
	caughtUp   func() bool
	membership *membership
	members    *memberClient
	log        *slog.Logger
}

// wrap serves next once the member has caught up, and before that passes
// requests to a live member (see above).
func (g catchUpGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.caughtUp() {
			next.ServeHTTP(w, r)
			return
		}
		if r.Header.Get(catchUpHeader) == "" {
			if addr, ok := g.servingPeer(); ok {
				g.passOn(w, r, addr)
				return
			}
		}
		w.Header().Set("Retry-After", strconv.Itoa(catchUpRetry))
		api.WriteError(g.log, w, r, fmt.Errorf("member %s is catching up with the cluster's metadata: %w", g.self, storage.ErrUnavailable))
	})
}

// servingPeer returns the HTTP address of a live member other than this
// one that stays in the cluster.
func (g catchUpGate) servingPeer() (string, bool) {
	v := g.membership.views.load()
	for _, name := range g.membership.staying() {
		if m, ok := v.members[name]; ok && m.HTTP != "" && v.live(name) {
			return m.HTTP, true
		}
	}
	return "", false
}

// passOn proxies r, whole and as the client sent it (credentials
// included), to the member at addr. The Host header is kept so the URLs
// the member answers with (Location, token realm) point back here.
func (g catchUpGate) passOn(w http.ResponseWriter, r *http.Request, addr string) {
	target := &url.URL{Scheme: g.members.scheme, Host: addr}
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			pr.Out.Header.Set(catchUpHeader, g.self)
		},
		Transport: g.members.client.Transport,
		// The serving member's answer replaces what this member's own
		// middleware set already (X-Request-Id, which both set to the
		// same id): the proxy adds its headers to those on w, and the
		// client got every such header twice.
		ModifyResponse: func(res *http.Response) error {
			for k := range res.Header {
				w.Header().Del(k)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set("Retry-After", strconv.Itoa(catchUpRetry))
			api.WriteError(g.log, w, r, fmt.Errorf("member %s is catching up; passing the request to %s: %w: %w", g.self, addr, storage.ErrUnavailable, err))
		},
	}
	p.ServeHTTP(w, r)
}
