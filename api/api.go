// Package api is the registry's HTTP protocol: the OCI Distribution Spec
// v1.1 and the Docker Registry HTTP API V2. It is a complete single-node
// registry over the storage interfaces; it knows nothing of the cluster.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// Config tunes the protocol. The zero value is the default. cmd/atoll
// sets it from registry:2's keys (storage.delete, catalog, ...).
type Config struct {
	// DisableDelete answers 405 UNSUPPORTED to manifest, tag and blob
	// deletes (registry:2's storage.delete.enabled: false). Default false.
	DisableDelete bool
	// MaxManifestSize bounds a pushed manifest in bytes. Default 4 MiB.
	MaxManifestSize int64
	// NoAnonymousMount answers a mount without ?from= with an upload
	// session instead (set when access is checked: the client may not be
	// allowed to read the blob it names). Default false.
	NoAnonymousMount bool
	// UploadTTL is how long an upload session may stay idle before it is
	// purged. Default 24h.
	UploadTTL time.Duration
	// ReadOnly serves reads and answers every write with 503 UNAVAILABLE
	// (registry:2's storage.maintenance.readonly.enabled). Default false.
	ReadOnly bool
	// CatalogMaxEntries bounds a catalog page: a request without n gets
	// at most this many repositories and a Link to the next page, and
	// n above it is refused (registry:2's catalog.maxentries). Default 0:
	// no bound.
	CatalogMaxEntries int
}

func (c *Config) applyDefaults() {
	if c.MaxManifestSize <= 0 {
		c.MaxManifestSize = 4 << 20
	}
	if c.UploadTTL <= 0 {
		c.UploadTTL = 24 * time.Hour
	}
}

// Deps are the stores and hooks a Registry serves from.
type Deps struct {
	Blobs  storage.BlobStore
	Meta   storage.Metadata
	Logger *slog.Logger
	// NewUploadID names a new upload session. Default: 32 random hex
	// digits. A cluster prefixes the member name.
	NewUploadID func() string
	// Remote serves what other members hold. Optional: nil for a node on
	// its own.
	Remote Remote
	// Events receives push, pull, delete and mount events. Optional.
	Events EventSink
	// Actor names the user making a request, for events. Optional.
	Actor func(r *http.Request) string
	// Upstream makes some repositories pull-through caches. Optional.
	Upstream Upstream
	// Visible reports whether the requester may see repository repo in
	// the catalog and search. Optional: all are visible.
	Visible func(r *http.Request, repo string) bool
	// Claims keeps online garbage collection off the blobs clients use.
	// Optional: nil when nothing collects while the registry serves.
	Claims Claims
	// Policy refuses writes the operator's rules forbid (quotas,
	// immutable tags). Optional: nil allows all.
	Policy Policy
}

// Remote reaches the rest of a cluster. The registry calls it after its own
// checks (name, digest, repository links), so access decisions are taken on
// the member the client reached. Methods may be called concurrently.
type Remote interface {
	// ServeBlob answers a GET or HEAD of blob d, which this member does not
	// hold, from a member that does (by proxy or redirect). It returns
	// storage.ErrBlobUnknown, writing nothing, when no member has it.
	ServeBlob(w http.ResponseWriter, r *http.Request, d digest.Digest) error
	// ForwardUpload passes a request for upload session id to the member
	// holding it. It returns false, writing nothing, when that is this one.
	ForwardUpload(w http.ResponseWriter, r *http.Request, id string) (bool, error)
}

// applyDefaults fills the optional hooks left nil with what a registry of
// its own does: log nothing, name uploads at random, anonymous actors,
// every repository visible and local, no rules, nothing collecting.
func (d *Deps) applyDefaults() {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.NewUploadID == nil {
		d.NewUploadID = randomID
	}
	if d.Actor == nil {
		d.Actor = func(*http.Request) string { return "" }
	}
	if d.Visible == nil {
		d.Visible = func(*http.Request, string) bool { return true }
	}
	if d.Upstream == nil {
		d.Upstream = noUpstream{}
	}
	if d.Policy == nil {
		d.Policy = allowAll{}
	}
	if d.Claims == nil {
		d.Claims = noClaims{}
	}
}

// Registry serves the API: it lays out the routes over one handler per
// resource (blobs.go, uploads.go, manifests.go, tags.go, referrers.go,
// catalog.go, search.go), each holding only the stores and hooks it uses.
// Its methods may be called concurrently.
type Registry struct {
	log      *slog.Logger
	readOnly bool
	sessions *uploadSessions
	router   *router
}

// New returns a registry over deps.
func New(cfg Config, deps Deps) *Registry {
	cfg.applyDefaults()
	deps.applyDefaults()
	events := emitter{sink: deps.Events, actor: deps.Actor}
	sessions := &uploadSessions{blobs: deps.Blobs, meta: deps.Meta, locks: newUploadLocks(), ttl: cfg.UploadTTL}
	h := handlers{
		blobs: &blobHandler{
			blobs: deps.Blobs, links: deps.Meta, upstream: deps.Upstream, claims: deps.Claims,
			remote: deps.Remote, events: events, disableDelete: cfg.DisableDelete,
		},
		uploads: &uploadHandler{
			blobs: deps.Blobs, meta: deps.Meta, sessions: sessions, upstream: deps.Upstream,
			claims: deps.Claims, policy: deps.Policy, remote: deps.Remote, newID: deps.NewUploadID, events: events,
			mounts: &mounter{
				blobs: deps.Blobs, links: deps.Meta, claims: deps.Claims, policy: deps.Policy,
				noAnonymous: cfg.NoAnonymousMount,
			},
		},
		manifests: &manifestHandler{
			meta: deps.Meta, upstream: deps.Upstream, claims: deps.Claims, policy: deps.Policy,
			events: events, maxSize: cfg.MaxManifestSize, disableDelete: cfg.DisableDelete,
		},
		catalog:   &catalogHandler{repos: deps.Meta, visible: deps.Visible, maxEntries: cfg.CatalogMaxEntries},
		tags:      tagHandler{catalog: deps.Meta},
		referrers: referrerHandler{index: deps.Meta},
	}
	return &Registry{log: deps.Logger, readOnly: cfg.ReadOnly, sessions: sessions, router: routes(deps.Logger, h)}
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ServeHTTP implements http.Handler.
func (reg *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if reg.refuseWrite(w, r) {
		return
	}
	reg.router.ServeHTTP(w, r)
}

// ExpireUploads discards upload sessions idle since before now - UploadTTL
// or whose bytes are gone, bytes of uploads that have no session, and the
// record of sessions that finished before then. It returns how many
// sessions it discarded.
func (reg *Registry) ExpireUploads(ctx context.Context, now time.Time) (int, error) {
	return reg.sessions.expireAll(ctx, now)
}

// refuseWrite answers every write with 503 when the registry is in
// read-only maintenance mode (registry:2's storage.maintenance.readonly).
func (reg *Registry) refuseWrite(w http.ResponseWriter, r *http.Request) bool {
	if !reg.readOnly || r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions {
		return false
	}
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	WriteError(reg.log, w, r, ErrReadOnly)
	return true
}

// handlerFunc is a handler that returns its error for handle to write.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle makes h an http.Handler that writes h's error as OCI error JSON,
// logged to log.
func handle(log *slog.Logger, h handlerFunc) http.Handler {
	// One value for every response, where Set would allocate one each: its
	// capacity of 1 makes an Add copy it rather than write into it.
	version := []string{"registry/2.0"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Docker-Distribution-API-Version"] = version
		if err := h(w, r); err != nil {
			WriteError(log, w, r, err)
		}
	})
}

// handlers are the registry's resources, one handler type each.
type handlers struct {
	blobs     *blobHandler
	uploads   *uploadHandler
	manifests *manifestHandler
	catalog   *catalogHandler
	tags      tagHandler
	referrers referrerHandler
}

// routes lays out the API (route.go parses the paths; handlers validate
// the names and arguments against the spec's grammar).
func routes(log *slog.Logger, h handlers) *router {
	wrap := func(f handlerFunc) http.Handler { return handle(log, f) }
	rt := &router{
		notFound: wrap(func(http.ResponseWriter, *http.Request) error {
			return newError(http.StatusNotFound, codeNameUnknown, "no such route")
		}),
		notAllowed: wrap(func(http.ResponseWriter, *http.Request) error {
			return newError(http.StatusMethodNotAllowed, codeUnsupported, "method not allowed")
		}),
	}
	rt.handle(Base, wrap(base), "GET", "HEAD")
	rt.handle(Catalog, wrap(h.catalog.catalog), "GET")
	rt.handle(Search, wrap(h.catalog.search), "GET")
	rt.handle(Tags, wrap(h.tags.tags), "GET")
	rt.handle(Referrers, wrap(h.referrers.referrers), "GET")
	rt.handle(Manifest, wrap(h.manifests.getManifest), "GET", "HEAD")
	rt.handle(Manifest, wrap(h.manifests.putManifest), "PUT")
	rt.handle(Manifest, wrap(h.manifests.deleteManifest), "DELETE")
	rt.handle(Uploads, wrap(h.uploads.startUpload), "POST")
	rt.handle(Upload, wrap(h.uploads.uploadStatus), "GET")
	rt.handle(Upload, wrap(h.uploads.patchUpload), "PATCH")
	rt.handle(Upload, wrap(h.uploads.finishUpload), "PUT")
	rt.handle(Upload, wrap(h.uploads.cancelUpload), "DELETE")
	rt.handle(Blob, wrap(h.blobs.getBlob), "GET", "HEAD")
	rt.handle(Blob, wrap(h.blobs.deleteBlob), "DELETE")
	return rt
}

// base implements "GET /v2/": the API version check.
func base(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	_, err := w.Write([]byte("{}"))
	return err
}
