// Package api is the registry's HTTP protocol: the OCI Distribution Spec
// v1.1 and the Docker Registry HTTP API V2. It is a complete single-node
// registry over the storage interfaces; it knows nothing of the cluster.
package api

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"
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

// Registry serves the API. Its methods may be called concurrently.
type Registry struct {
	cfg      Config
	blobs    storage.BlobStore
	meta     storage.Metadata
	log      *slog.Logger
	newID    func() string
	remote   Remote
	events   EventSink
	actor    func(r *http.Request) string
	visible  func(r *http.Request, repo string) bool
	upstream Upstream
	claims   Claims
	policy   Policy
	uploads  *uploadLocks
	router   *mux.Router
}

// New returns a registry over deps.
func New(cfg Config, deps Deps) *Registry {
	cfg.applyDefaults()
	reg := &Registry{
		cfg:      cfg,
		blobs:    deps.Blobs,
		meta:     deps.Meta,
		log:      deps.Logger,
		newID:    deps.NewUploadID,
		remote:   deps.Remote,
		events:   deps.Events,
		actor:    deps.Actor,
		visible:  deps.Visible,
		upstream: deps.Upstream,
		claims:   deps.Claims,
		policy:   deps.Policy,
		uploads:  newUploadLocks(),
	}
	if reg.policy == nil {
		reg.policy = allowAll{}
	}
	if reg.claims == nil {
		reg.claims = noClaims{}
	}
	if reg.log == nil {
		reg.log = slog.New(slog.DiscardHandler)
	}
	if reg.newID == nil {
		reg.newID = randomID
	}
	if reg.actor == nil {
		reg.actor = func(*http.Request) string { return "" }
	}
	if reg.visible == nil {
		reg.visible = func(*http.Request, string) bool { return true }
	}
	reg.router = reg.routes()
	return reg
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ServeHTTP implements http.Handler.
func (reg *Registry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if reg.readOnly(w, r) {
		return
	}
	reg.router.ServeHTTP(w, r)
}

// handlerFunc is a handler that returns its error for handle to write.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (reg *Registry) handle(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		if err := h(w, r); err != nil {
			WriteError(reg.log, w, r, err)
		}
	})
}

// routes lays out the API. A name may contain slashes, so routes match the
// longest name and handlers validate it against the spec's grammar.
func (reg *Registry) routes() *mux.Router {
	m := mux.NewRouter()
	m.SkipClean(true)
	m.UseEncodedPath()
	const name = "/v2/{name:.+}"
	m.Handle("/v2/", reg.handle(reg.base)).Methods("GET", "HEAD")
	m.Handle("/v2/_catalog", reg.handle(reg.catalog)).Methods("GET")
	m.Handle("/v1/search", reg.handle(reg.search)).Methods("GET")
	m.Handle(name+"/tags/list", reg.handle(reg.tags)).Methods("GET")
	m.Handle(name+"/referrers/{digest}", reg.handle(reg.referrers)).Methods("GET")
	m.Handle(name+"/manifests/{reference}", reg.handle(reg.getManifest)).Methods("GET", "HEAD")
	m.Handle(name+"/manifests/{reference}", reg.handle(reg.putManifest)).Methods("PUT")
	m.Handle(name+"/manifests/{reference}", reg.handle(reg.deleteManifest)).Methods("DELETE")
	m.Handle(name+"/blobs/uploads/", reg.handle(reg.startUpload)).Methods("POST")
	m.Handle(name+"/blobs/uploads/{id}", reg.handle(reg.uploadStatus)).Methods("GET")
	m.Handle(name+"/blobs/uploads/{id}", reg.handle(reg.patchUpload)).Methods("PATCH")
	m.Handle(name+"/blobs/uploads/{id}", reg.handle(reg.finishUpload)).Methods("PUT")
	m.Handle(name+"/blobs/uploads/{id}", reg.handle(reg.cancelUpload)).Methods("DELETE")
	m.Handle(name+"/blobs/{digest}", reg.handle(reg.getBlob)).Methods("GET", "HEAD")
	m.Handle(name+"/blobs/{digest}", reg.handle(reg.deleteBlob)).Methods("DELETE")
	m.NotFoundHandler = reg.handle(func(http.ResponseWriter, *http.Request) error {
		return newError(http.StatusNotFound, codeNameUnknown, "no such route")
	})
	m.MethodNotAllowedHandler = reg.handle(func(http.ResponseWriter, *http.Request) error {
		return newError(http.StatusMethodNotAllowed, codeUnsupported, "method not allowed")
	})
	return m
}

// base implements "GET /v2/": the API version check.
func (reg *Registry) base(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	_, err := w.Write([]byte("{}"))
	return err
}
