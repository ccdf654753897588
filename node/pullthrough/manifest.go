package pullthrough

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/oci"
	"github.com/atollhq/atoll/storage"
)

// manifestAccept lists every manifest type atoll stores, so no upstream
// falls back to Docker schema 1.
var manifestAccept = strings.Join([]string{
	oci.MediaTypeImageIndex, oci.MediaTypeImageManifest,
	oci.MediaTypeDockerList, oci.MediaTypeDockerManifest,
}, ", ")

// manifestTimeout bounds one manifest exchange with the upstream: the tag
// check and the fetch together.
const manifestTimeout = 30 * time.Second

// Manifest implements api.Upstream. A tag the upstream answers 404 for is
// storage.ErrTagUnknown even when a copy is cached (it was removed
// upstream). When the upstream fails otherwise (unreachable, timeout, 5xx,
// 429, 401/403) a cached copy is served; without one the error is
// storage.ErrTagUnknown or storage.ErrManifestUnknown for 401/403 (access
// refused) and storage.ErrUnavailable for the rest.
//
// In a cluster the owner of the tag (of the digest) asks the upstream
// (members.go); a member whose owner fails serves its cached copy.
func (c *Cache) Manifest(ctx context.Context, repo string, ref oci.Reference) (*storage.Manifest, error) {
	return c.manifest(ctx, repo, ref, true)
}

// manifest is Manifest; ask says whether the owner may be asked.
func (c *Cache) manifest(ctx context.Context, repo string, ref oci.Reference, ask bool) (*storage.Manifest, error) {
	rt, up, ok := c.match(repo)
	if !ok {
		return nil, fmt.Errorf("%s is not a pull-through cache: %w", repo, storage.ErrNameUnknown)
	}
	return c.manifests.get(ctx, rt, up, repo, ref, ask)
}

// manifestFetcher resolves the tags and manifests of proxied repositories:
// from what is cached while fresh, else from the upstream (or the member
// owning the fetch), storing what it fetches. Its methods may be called
// concurrently.
type manifestFetcher struct {
	meta    storage.Manifests
	owners  owners
	m       *metrics
	log     *slog.Logger
	checked *tagChecks
	flights group[*storage.Manifest] // by "repo:tag" or "repo@digest"
}

// get resolves ref in repo, whose route is rt and whose name upstream is
// up: see Cache.Manifest.
func (f *manifestFetcher) get(ctx context.Context, rt *route, up, repo string, ref oci.Reference, ask bool) (*storage.Manifest, error) {
	host := rt.client.host
	if ref.Tag != "" {
		key := repo + ":" + ref.Tag
		if m := f.local(repo, ref.Tag); m != nil && f.checked.fresh(key, rt.ttl) {
			f.m.hits.WithLabelValues(host, "manifest").Inc()
			return m, nil
		}
		return f.flights.do(ctx, key, func(ctx context.Context) (*storage.Manifest, error) {
			ctx, cancel := context.WithTimeout(ctx, manifestTimeout)
			defer cancel()
			if base, ok := f.owners.owner(tagKey(repo, ref.Tag)); ok && ask {
				m, err := f.owners.forwardManifest(ctx, rt, base, repo, ref)
				switch {
				case err == nil:
					f.checked.touch(key)
					return m, nil
				case errors.Is(err, errUnreachable):
					f.log.Warn("the tag's owning member is unreachable; asking the upstream here", "repository", repo, "tag", ref.Tag, "err", err)
				case errors.Is(err, storage.ErrTagUnknown):
					return nil, err
				default:
					if cached := f.local(repo, ref.Tag); cached != nil {
						return cached, nil
					}
					return nil, err
				}
			}
			f.m.misses.WithLabelValues(host, "manifest").Inc()
			return f.refreshTag(ctx, rt, up, repo, ref.Tag)
		})
	}
	if m, err := f.meta.Manifest(repo, ref.Digest); err == nil {
		f.m.hits.WithLabelValues(host, "manifest").Inc()
		return m, nil
	}
	return f.flights.do(ctx, repo+"@"+ref.Digest.String(), func(ctx context.Context) (*storage.Manifest, error) {
		ctx, cancel := context.WithTimeout(ctx, manifestTimeout)
		defer cancel()
		if base, ok := f.owners.owner(ref.Digest); ok && ask {
			m, err := f.owners.forwardManifest(ctx, rt, base, repo, ref)
			if !errors.Is(err, errUnreachable) {
				return m, err
			}
			f.log.Warn("the manifest's owning member is unreachable; asking the upstream here", "repository", repo, "digest", ref.Digest, "err", err)
		}
		f.m.misses.WithLabelValues(host, "manifest").Inc()
		m, err := f.fetch(ctx, rt, up, repo, ref.Digest.String(), ref.Digest, "")
		if err != nil {
			return nil, failure(err, storage.ErrManifestUnknown)
		}
		return m, nil
	})
}

// local returns the cached manifest tag points at, or nil.
func (f *manifestFetcher) local(repo, tag string) *storage.Manifest {
	d, err := f.meta.Tag(repo, tag)
	if err != nil {
		return nil
	}
	m, err := f.meta.Manifest(repo, d)
	if err != nil {
		return nil
	}
	return m
}

// refreshTag asks the upstream where tag points, fetches the manifest if it
// is not here yet, and points the local tag at it. When the upstream fails,
// the cached tag is served, and trusted for another TTL so that pulls during
// an outage do not each wait for it.
func (f *manifestFetcher) refreshTag(ctx context.Context, rt *route, up, repo, tag string) (*storage.Manifest, error) {
	key := repo + ":" + tag
	cached := f.local(repo, tag)
	m, err := f.resolveTag(ctx, rt, up, repo, tag, cached)
	switch {
	case err == nil:
		f.checked.touch(key)
		return m, nil
	case upstreamStatus(err) == http.StatusNotFound:
		return nil, fmt.Errorf("%w: %w", err, storage.ErrTagUnknown)
	case cached != nil:
		f.log.Warn("upstream failed; serving the cached tag", "repository", repo, "tag", tag, "err", err)
		f.checked.touch(key)
		return cached, nil
	}
	return nil, failure(err, storage.ErrTagUnknown)
}

// resolveTag learns the tag's digest with a HEAD and returns the local
// manifest when it has that digest, else fetches it by digest (by tag when
// the upstream sent no digest).
func (f *manifestFetcher) resolveTag(ctx context.Context, rt *route, up, repo, tag string, cached *storage.Manifest) (*storage.Manifest, error) {
	resp, err := rt.client.do(ctx, http.MethodHead, up, "manifests/"+tag, manifestAccept)
	if err != nil {
		return nil, err
	}
	_ = resp.Body.Close()
	d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		return f.fetch(ctx, rt, up, repo, tag, "", tag)
	}
	if cached != nil && cached.Descriptor.Digest == d {
		return cached, nil
	}
	if m, err := f.meta.Manifest(repo, d); err == nil {
		if err := f.meta.PutManifest(ctx, repo, m, tag); err != nil {
			return nil, fmt.Errorf("tag %s of %s: %w", tag, repo, err)
		}
		return m, nil
	}
	return f.fetch(ctx, rt, up, repo, d.String(), d, tag)
}

// fetch GETs manifest ref of upstream repository up, checks that
// it has digest want (when set) and the digest the upstream claims, parses
// it, and stores it in repo, tagged tag when tag is not empty.
func (f *manifestFetcher) fetch(ctx context.Context, rt *route, up, repo, ref string, want digest.Digest, tag string) (*storage.Manifest, error) {
	resp, err := rt.client.do(ctx, http.MethodGet, up, "manifests/"+ref, manifestAccept)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, manifestLimit+1))
	if err != nil {
		return nil, unavailable(fmt.Errorf("upstream manifest %s of %s: %w", ref, up, err))
	}
	if int64(len(body)) > manifestLimit {
		return nil, unavailable(fmt.Errorf("upstream manifest %s of %s: over %d bytes", ref, up, manifestLimit))
	}
	d, err := verifyManifest(body, want, resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		return nil, unavailable(fmt.Errorf("upstream manifest %s of %s: %w", ref, up, err))
	}
	mt := oci.BaseMediaType(resp.Header.Get("Content-Type"))
	if !oci.IsManifestType(mt) {
		mt = "" // e.g. application/json: the content's mediaType decides
	}
	p, err := oci.Parse(mt, body)
	if err != nil {
		// %v: the client did not send this manifest, so it is no 400.
		return nil, unavailable(fmt.Errorf("upstream manifest %s of %s: %v", ref, up, err))
	}
	m := &storage.Manifest{Descriptor: p.Descriptor(d, int64(len(body))), Content: body}
	if p.Subject != nil {
		m.Subject = p.Subject.Digest
	}
	if err := f.meta.PutManifest(ctx, repo, m, tag); err != nil {
		return nil, fmt.Errorf("store manifest %s of %s: %w", d, repo, err)
	}
	f.log.Debug("cached manifest", "repository", repo, "digest", d, "tag", tag)
	return m, nil
}

// verifyManifest returns the digest of body: want, when set, else the
// upstream's Docker-Content-Digest claim, else its SHA-256. Both want and
// the claim must match the content.
func verifyManifest(body []byte, want digest.Digest, claim string) (digest.Digest, error) {
	d := want
	if claim != "" {
		cd, err := oci.ParseDigest(claim)
		if err != nil {
			return "", fmt.Errorf("upstream's Docker-Content-Digest %q: %w", claim, err)
		}
		if got := cd.Algorithm().FromBytes(body); got != cd {
			return "", fmt.Errorf("content has digest %s, the upstream's Docker-Content-Digest says %s", got, cd)
		}
		if d == "" {
			d = cd
		}
	}
	if d == "" {
		return digest.FromBytes(body), nil
	}
	if got := d.Algorithm().FromBytes(body); got != d {
		return "", fmt.Errorf("content has digest %s, want %s", got, d)
	}
	return d, nil
}

// tagChecks remembers when the upstream was last asked about each tag, so a
// tag is trusted for its route's TTL. Its methods may be called
// concurrently.
type tagChecks struct {
	now func() time.Time // the clock of tag freshness; tests set it

	mu sync.Mutex
	at map[string]time.Time // "repo:tag" -> when the upstream was last asked
}

func newTagChecks(now func() time.Time) *tagChecks {
	return &tagChecks{now: now, at: map[string]time.Time{}}
}

// fresh reports whether the upstream was asked about key within ttl.
func (t *tagChecks) fresh(key string, ttl time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.at[key]
	return ok && t.now().Sub(at) < ttl
}

// touch records that the upstream was just asked about key.
func (t *tagChecks) touch(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.at[key] = t.now()
}
