package pullthrough

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
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
	host := rt.client.host
	if ref.Tag != "" {
		key := repo + ":" + ref.Tag
		if m := c.local(repo, ref.Tag); m != nil && c.fresh(key, rt.ttl) {
			c.m.hits.WithLabelValues(host, "manifest").Inc()
			return m, nil
		}
		return c.manifests.do(ctx, key, func(ctx context.Context) (*storage.Manifest, error) {
			ctx, cancel := context.WithTimeout(ctx, manifestTimeout)
			defer cancel()
			if base, ok := c.owner(tagKey(repo, ref.Tag)); ok && ask {
				m, err := c.forwardManifest(ctx, rt, base, repo, ref)
				switch {
				case err == nil:
					c.touch(key)
					return m, nil
				case errors.Is(err, errUnreachable):
					c.log.Warn("the tag's owning member is unreachable; asking the upstream here", "repository", repo, "tag", ref.Tag, "err", err)
				case errors.Is(err, storage.ErrTagUnknown):
					return nil, err
				default:
					if cached := c.local(repo, ref.Tag); cached != nil {
						return cached, nil
					}
					return nil, err
				}
			}
			c.m.misses.WithLabelValues(host, "manifest").Inc()
			return c.refreshTag(ctx, rt, up, repo, ref.Tag)
		})
	}
	if m, err := c.meta.Manifest(repo, ref.Digest); err == nil {
		c.m.hits.WithLabelValues(host, "manifest").Inc()
		return m, nil
	}
	return c.manifests.do(ctx, repo+"@"+ref.Digest.String(), func(ctx context.Context) (*storage.Manifest, error) {
		ctx, cancel := context.WithTimeout(ctx, manifestTimeout)
		defer cancel()
		if base, ok := c.owner(ref.Digest); ok && ask {
			m, err := c.forwardManifest(ctx, rt, base, repo, ref)
			if !errors.Is(err, errUnreachable) {
				return m, err
			}
			c.log.Warn("the manifest's owning member is unreachable; asking the upstream here", "repository", repo, "digest", ref.Digest, "err", err)
		}
		c.m.misses.WithLabelValues(host, "manifest").Inc()
		m, err := c.fetchManifest(ctx, rt, up, repo, ref.Digest.String(), ref.Digest, "")
		if err != nil {
			return nil, failure(err, storage.ErrManifestUnknown)
		}
		return m, nil
	})
}

// local returns the cached manifest tag points at, or nil.
func (c *Cache) local(repo, tag string) *storage.Manifest {
	d, err := c.meta.Tag(repo, tag)
	if err != nil {
		return nil
	}
	m, err := c.meta.Manifest(repo, d)
	if err != nil {
		return nil
	}
	return m
}

// refreshTag asks the upstream where tag points, fetches the manifest if it
// is not here yet, and points the local tag at it. When the upstream fails,
// the cached tag is served, and trusted for another TTL so that pulls during
// an outage do not each wait for it.
func (c *Cache) refreshTag(ctx context.Context, rt *route, up, repo, tag string) (*storage.Manifest, error) {
	key := repo + ":" + tag
	cached := c.local(repo, tag)
	m, err := c.resolveTag(ctx, rt, up, repo, tag, cached)
	switch {
	case err == nil:
		c.touch(key)
		return m, nil
	case upstreamStatus(err) == http.StatusNotFound:
		return nil, fmt.Errorf("%w: %w", err, storage.ErrTagUnknown)
	case cached != nil:
		c.log.Warn("upstream failed; serving the cached tag", "repository", repo, "tag", tag, "err", err)
		c.touch(key)
		return cached, nil
	}
	return nil, failure(err, storage.ErrTagUnknown)
}

// resolveTag learns the tag's digest with a HEAD and returns the local
// manifest when it has that digest, else fetches it by digest (by tag when
// the upstream sent no digest).
func (c *Cache) resolveTag(ctx context.Context, rt *route, up, repo, tag string, cached *storage.Manifest) (*storage.Manifest, error) {
	resp, err := rt.client.do(ctx, http.MethodHead, up, "manifests/"+tag, manifestAccept)
	if err != nil {
		return nil, err
	}
	_ = resp.Body.Close()
	d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		return c.fetchManifest(ctx, rt, up, repo, tag, "", tag)
	}
	if cached != nil && cached.Descriptor.Digest == d {
		return cached, nil
	}
	if m, err := c.meta.Manifest(repo, d); err == nil {
		if err := c.meta.PutManifest(ctx, repo, m, tag); err != nil {
			return nil, fmt.Errorf("tag %s of %s: %w", tag, repo, err)
		}
		return m, nil
	}
	return c.fetchManifest(ctx, rt, up, repo, d.String(), d, tag)
}

// fetchManifest GETs manifest ref of upstream repository up, checks that
// it has digest want (when set) and the digest the upstream claims, parses
// it, and stores it in repo, tagged tag when tag is not empty.
func (c *Cache) fetchManifest(ctx context.Context, rt *route, up, repo, ref string, want digest.Digest, tag string) (*storage.Manifest, error) {
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
	if err := c.meta.PutManifest(ctx, repo, m, tag); err != nil {
		return nil, fmt.Errorf("store manifest %s of %s: %w", d, repo, err)
	}
	c.log.Debug("cached manifest", "repository", repo, "digest", d, "tag", tag)
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
