// Package route sends a request to the member that can answer it. The
// registry (package api) checks each request first (name, digest,
// repository link, access) on the member the client reached; then a blob
// this member lacks is streamed from (ModeProxy) or redirected to
// (ModeRedirect) a member holding it, and a request for an upload session
// goes to the member holding the session, named in its id.
//
// Members authenticate to each other over HTTP with one token derived from
// the cluster secret (Token, sent in TokenHeader; Router.Trusted checks
// it), as they do over gRPC with another (package peer). A redirected
// client carries a signed, short-lived URL instead (auth.go).
//
// Every error a client sees goes out through api.WriteError: a member name
// or an rpc failure is logged, never sent.
package route

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/auth"
	"github.com/atollhq/atoll/storage"
)

// Routing modes for blob reads a member does not hold.
const (
	ModeProxy    = "proxy"    // stream the blob from a member holding it
	ModeRedirect = "redirect" // 307 to a member holding it
)

// Config is the router's configuration.
type Config struct {
	// Self is this member's name; upload ids start with it.
	Self string
	// Mode is how a blob held elsewhere is served: ModeProxy (default) or
	// ModeRedirect.
	Mode string
	// Scheme of the members' HTTP APIs: "http" (default) or "https".
	Scheme string
	// Secret is the cluster secret the member token derives from. Empty:
	// members are not authenticated, which only a registry open to all
	// (no Deps.Access) accepts.
	Secret string
	// ProxyTimeout bounds the wait for a member's response headers on a
	// proxied read before the next member is tried. Default 3s.
	ProxyTimeout time.Duration
	// ProxyIdle cuts a proxied body the member stops sending for this
	// long: the client sees the answer end early and the connection to the
	// member is closed. Default 30s.
	ProxyIdle time.Duration
}

func (c *Config) applyDefaults() {
	if c.Mode == "" {
		c.Mode = ModeProxy
	}
	if c.Scheme == "" {
		c.Scheme = "http"
	}
	if c.ProxyTimeout <= 0 {
		c.ProxyTimeout = 3 * time.Second
	}
	if c.ProxyIdle <= 0 {
		c.ProxyIdle = 30 * time.Second
	}
}

// Members is the router's picture of the cluster. Implementations answer
// concurrently, from the latest membership.
type Members interface {
	// Preference returns the live members in the order the ring prefers
	// them for blob d, owners first; this member may be among them.
	Preference(d digest.Digest) []string
	// Addr returns member name's HTTP address (host:port) and whether it
	// is alive or suspect.
	Addr(name string) (addr string, live bool)
	// Has reports, per digest, whether member holds the blob. Asked before
	// a redirect, since a redirected client cannot be sent elsewhere.
	Has(ctx context.Context, member string, ds []digest.Digest) ([]bool, error)
}

// Blobs are the blobs this member holds, served to other members.
type Blobs interface {
	// Open returns blob d; storage.ErrBlobUnknown when it is not here.
	Open(ctx context.Context, d digest.Digest) (storage.Blob, error)
}

// Access decides whether a client identity may act on a repository.
type Access interface {
	Allowed(id auth.Identity, repo, action string) bool
}

// Deps are what the router consumes.
type Deps struct {
	// Members is the cluster; nil for a member on its own, whose router
	// serves nothing from elsewhere.
	Members Members
	// Blobs are served to other members (ServeMember). Required.
	Blobs Blobs
	// Access is set when clients authenticate: redirects then carry a
	// signed URL and forwarded requests the client's identity. Nil: open.
	Access Access
	Logger *slog.Logger
	// Routed counts blob reads served from another member, by mode.
	// Forwarded counts forwarded upload requests. Optional.
	Routed    *prometheus.CounterVec
	Forwarded prometheus.Counter
}

// Router routes requests between members. It implements api.Remote. Its
// methods may be called concurrently.
type Router struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	token   string
	members *http.Client // forwarded uploads
	blobs   *http.Client // proxied blob reads over https: a frozen member fails fast
	conns   *connPool    // streamed blob reads over http
	bufs    *bufferPool
}

var _ api.Remote = (*Router)(nil)

// New returns a router.
func New(cfg Config, deps Deps) *Router {
	cfg.applyDefaults()
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Router{
		cfg:     cfg,
		deps:    deps,
		log:     deps.Logger,
		token:   Token(cfg.Secret),
		members: &http.Client{Transport: Transport(0)},
		blobs:   &http.Client{Transport: Transport(cfg.ProxyTimeout)},
		conns:   newConnPool(),
		bufs:    newBufferPool(1 << 20),
	}
}

// ServeBlob implements api.Remote: members are tried in the blob's
// preference order, owners first. It returns storage.ErrBlobUnknown,
// having written nothing, when none serves it.
func (rt *Router) ServeBlob(w http.ResponseWriter, r *http.Request, d digest.Digest) error {
	ms := rt.deps.Members
	if ms == nil {
		return storage.ErrBlobUnknown
	}
	for _, name := range ms.Preference(d) {
		addr, live := ms.Addr(name)
		if name == rt.cfg.Self || !live {
			continue
		}
		if rt.cfg.Mode == ModeRedirect && r.Header.Get(PassedOnHeader) == "" {
			// A member frozen but not yet suspected (gossip takes a few
			// seconds) would hold the client until it gave up: the next
			// member is asked after ProxyTimeout, as a proxied read is.
			ctx, cancel := context.WithTimeout(r.Context(), rt.cfg.ProxyTimeout)
			has, err := ms.Has(ctx, name, []digest.Digest{d})
			cancel()
			if err != nil || len(has) == 0 || !has[0] {
				rt.log.Debug("redirect: member lacks the blob", "member", name, "blob", d, "err", err)
				continue
			}
			rt.count(ModeRedirect)
			http.Redirect(w, r, rt.redirectURL(addr, r, d), http.StatusTemporaryRedirect)
			return nil
		}
		proxy := rt.proxyBlob
		if rt.cfg.Scheme == "http" {
			proxy = rt.streamBlob
		}
		if proxy(w, r, addr, d) {
			return nil
		}
	}
	return fmt.Errorf("%s on no member: %w", d, storage.ErrBlobUnknown)
}

func (rt *Router) count(mode string) {
	if rt.deps.Routed != nil {
		rt.deps.Routed.WithLabelValues(mode).Inc()
	}
}

// NewUploadID names a new upload session after member self, so any member
// can send its requests there.
func NewUploadID(self string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return self + "." + hex.EncodeToString(b)
}

// UploadMember returns the member named in an upload id, or "".
func UploadMember(id string) string {
	i := strings.LastIndexByte(id, '.')
	if i <= 0 {
		return ""
	}
	return id[:i]
}
