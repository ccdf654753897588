// Package pullthrough makes repositories pull-through caches of upstream
// registries: registry:2's proxy (one upstream for every repository), and
// atoll's prefixed upstreams beside local repositories that accept pushes.
//
// A cache stores what it fetches in the node's own stores, so cached
// content is replicated like pushed content and outlives the upstream:
//
//   - A manifest by digest is served locally when present (content-addressed,
//     never stale), else fetched, verified and stored.
//   - A tag is trusted for the route's TTL after the upstream was last asked
//     about it; then a HEAD learns its digest and a GET by digest fetches the
//     manifest only when it changed. When the upstream is unreachable or
//     fails (5xx, 429, timeout), the cached tag is served.
//   - A blob is fetched on its first pull, streamed into the blob store
//     (which verifies the digest) and linked into the repository. Concurrent
//     pulls of one blob share one fetch.
package pullthrough

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/storage"
)

// Deps are the stores a Cache writes fetched content into: the node's, so
// in a cluster they replicate.
type Deps struct {
	Blobs  storage.BlobStore
	Meta   storage.Metadata
	Logger *slog.Logger // optional
	// Metrics registers the cache's metrics. Optional.
	Metrics prometheus.Registerer
	// Members, in a cluster, sends each upstream fetch to the member that
	// owns it, so the cluster fetches each blob and tag once. Nil: this
	// member fetches everything itself.
	Members Members
}

// Cache implements api.Upstream: it matches a repository to its upstream
// (its route) and hands the fetch to the part that does it: blobFetcher
// (blob.go), manifestFetcher with its tagChecks (manifest.go), both asking
// the owning member through owners (members.go). Its methods may be called
// concurrently.
type Cache struct {
	routes    []route // longest prefix first
	log       *slog.Logger
	m         *metrics
	blobs     *blobFetcher
	manifests *manifestFetcher
}

var _ api.Upstream = (*Cache)(nil)

// New returns a cache of cfg's upstreams, or an error naming the invalid
// setting. It does not contact the upstreams.
func New(cfg Config, deps Deps) (*Cache, error) {
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("pull-through cache: %w", err)
	}
	routes, err := cfg.routes(m)
	if err != nil {
		return nil, fmt.Errorf("pull-through cache: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	own := owners{member: deps.Members, m: m}
	c := &Cache{
		routes:    routes,
		log:       log,
		m:         m,
		blobs:     &blobFetcher{blobs: deps.Blobs, links: deps.Meta, owners: own, m: m, log: log},
		manifests: &manifestFetcher{meta: deps.Meta, owners: own, m: m, log: log, checked: newTagChecks(time.Now)},
	}
	for _, rt := range routes {
		c.log.Info("pull-through cache", "prefix", rt.prefix, "upstream", rt.client.base, "ttl", rt.ttl)
	}
	return c, nil
}

// Proxied implements api.Upstream: repo is a cache when a route's prefix
// starts it (with a name after the prefix), or when the proxy section
// caches everything.
func (c *Cache) Proxied(repo string) bool {
	_, _, ok := c.match(repo)
	return ok
}

// match returns repo's route and its name upstream.
func (c *Cache) match(repo string) (*route, string, bool) {
	for i := range c.routes {
		rt := &c.routes[i]
		if len(repo) > len(rt.prefix) && repo[:len(rt.prefix)] == rt.prefix {
			return rt, rt.client.repoName(repo[len(rt.prefix):]), true
		}
	}
	return nil, "", false
}

// failure turns an upstream error into the error the API maps for the
// client: unknown (404) when the upstream has no such thing or refuses
// access to it, storage.ErrUnavailable (503) for anything else.
func failure(err error, unknown error) error {
	var ae *api.Error
	if errors.As(err, &ae) {
		return err // a rate limit's 429, as the client must see it
	}
	switch upstreamStatus(err) {
	case http.StatusNotFound, http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w: %w", err, unknown)
	}
	return unavailable(err)
}

// unavailable wraps an upstream error the client cannot fix as
// storage.ErrUnavailable.
func unavailable(err error) error {
	if errors.Is(err, storage.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", err, storage.ErrUnavailable)
}
