package pullthrough

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/oci"
	"github.com/atollhq/atoll/storage"
)

// One fetch per blob and tag across a cluster. Each fetch has an owner, the
// ring owner of the blob's digest (of "repo:tag" for a tag): a member that
// needs a blob or tag from the upstream asks the owner, through MemberPath,
// and the owner fetches it once, however many members and clients ask at
// once (its singleflight), stores it (placed and replicated like a push) and
// answers. A member's own concurrent requests share one ask (singleflight
// here too). When the owner cannot be reached the member fetches itself:
// a second fetch is better than a failed pull.

// MemberPath is the prefix of the member-to-member endpoints the node
// serves with MemberHandler, behind its cluster authentication.
const MemberPath = "/_atoll/v1/pullthrough/"

// Members is how a cache reaches the member owning a fetch. Methods may be
// called concurrently.
type Members interface {
	// Owner returns the base URL (scheme://host:port) of the member that
	// fetches key from the upstream, or self when that is this member.
	Owner(key digest.Digest) (baseURL string, self bool)
	// Do sends a member-to-member request with the cluster's credentials.
	Do(req *http.Request) (*http.Response, error)
}

// errUnreachable marks an owner that did not answer.
var errUnreachable = errors.New("owning member unreachable")

// tagKey is the ring key of tag of repo.
func tagKey(repo, tag string) digest.Digest {
	return digest.FromString("pullthrough " + repo + ":" + tag)
}

// owners sends fetches to the members owning them. With no Members (a
// registry of its own) this member owns every fetch. It may be used
// concurrently.
type owners struct {
	member Members // nil on a registry of its own
	m      *metrics
}

// owner returns the owner's URL when another member owns key.
func (o owners) owner(key digest.Digest) (string, bool) {
	if o.member == nil {
		return "", false
	}
	u, self := o.member.Owner(key)
	return u, !self && u != ""
}

// ask POSTs to the owner's endpoint and returns its 200 answer; an
// error answer becomes the error the client would have had from the owner.
func (o owners) ask(ctx context.Context, rt *route, base, what string, q url.Values) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, memberTimeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+MemberPath+what+"?"+q.Encode(), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	o.m.forwards.WithLabelValues(rt.client.host, what).Inc()
	resp, err := o.member.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%w: %s: %w", errUnreachable, base, err)
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		until := time.Now().Add(parseRetryAfter(resp.Header.Get("Retry-After")))
		rt.client.limit.close(until) // this member learns the limit too
		return nil, rt.client.limit.errLimited(until)
	case http.StatusNotFound:
		var unknown error = storage.ErrBlobUnknown
		switch resp.Header.Get(unknownHeader) {
		case "manifest":
			unknown = storage.ErrManifestUnknown
		case "tag":
			unknown = storage.ErrTagUnknown
		}
		return nil, fmt.Errorf("member %s: %s: %w", base, strings.TrimSpace(string(msg)), unknown)
	case http.StatusBadGateway:
		return nil, fmt.Errorf("%w: %s answers %d", errUnreachable, base, resp.StatusCode)
	}
	return nil, unavailable(fmt.Errorf("member %s: %d %s", base, resp.StatusCode, strings.TrimSpace(string(msg))))
}

// memberTimeout bounds an ask: the owner's fetch of a large blob included.
const memberTimeout = 30 * time.Minute

type cancelOnClose struct {
	io.ReadCloser
	cancel func()
}

func (c cancelOnClose) Close() error { err := c.ReadCloser.Close(); c.cancel(); return err }

// unknownHeader tells the asking member which unknown a 404 is.
const unknownHeader = "Atoll-Pullthrough-Unknown"

// forwardBlob asks the owner at base to make blob d of repo readable.
func (o owners) forwardBlob(ctx context.Context, rt *route, base, repo string, d digest.Digest) error {
	resp, err := o.ask(ctx, rt, base, "blob", url.Values{"repo": {repo}, "digest": {d.String()}})
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// forwardManifest asks the owner at base to resolve ref of repo.
func (o owners) forwardManifest(ctx context.Context, rt *route, base, repo string, ref oci.Reference) (*storage.Manifest, error) {
	resp, err := o.ask(ctx, rt, base, "manifest", url.Values{"repo": {repo}, "ref": {ref.String()}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var m storage.Manifest
	if err := json.NewDecoder(io.LimitReader(resp.Body, 2*manifestLimit+4096)).Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %s: manifest answer: %w", errUnreachable, base, err)
	}
	if m.Descriptor.Digest.Algorithm().FromBytes(m.Content) != m.Descriptor.Digest {
		return nil, unavailable(fmt.Errorf("member %s: manifest content is not %s", base, m.Descriptor.Digest))
	}
	return &m, nil
}

// MemberHandler serves other members' asks (POST MemberPath+"blob" and
// MemberPath+"manifest"): this member fetches as the owner, never asking
// another. The node guards it with the cluster's authentication.
func (c *Cache) MemberHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		repo := q.Get("repo")
		if !c.Proxied(repo) || r.Method != http.MethodPost {
			http.Error(w, "not a pull-through repository", http.StatusBadRequest)
			return
		}
		switch strings.TrimPrefix(r.URL.Path, MemberPath) {
		case "blob":
			d, err := digest.Parse(q.Get("digest"))
			if err != nil {
				http.Error(w, "bad digest", http.StatusBadRequest)
				return
			}
			if err := c.blob(r.Context(), repo, d, false); err != nil {
				memberError(w, err)
				return
			}
			w.WriteHeader(http.StatusOK)
		case "manifest":
			ref, ok := oci.ParseReference(q.Get("ref"))
			if !ok {
				http.Error(w, "bad reference", http.StatusBadRequest)
				return
			}
			m, err := c.manifest(r.Context(), repo, ref, false)
			if err != nil {
				memberError(w, err)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(m)
		default:
			http.NotFound(w, r)
		}
	})
}

// memberError answers an ask with err as the asking member decodes it.
func memberError(w http.ResponseWriter, err error) {
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		for k, v := range ae.Header {
			w.Header()[k] = v
		}
		http.Error(w, ae.Message, ae.Status)
	case errors.Is(err, storage.ErrTagUnknown):
		w.Header().Set(unknownHeader, "tag")
		http.Error(w, err.Error(), http.StatusNotFound)
	case errors.Is(err, storage.ErrManifestUnknown):
		w.Header().Set(unknownHeader, "manifest")
		http.Error(w, err.Error(), http.StatusNotFound)
	case errors.Is(err, storage.ErrBlobUnknown):
		w.Header().Set(unknownHeader, "blob")
		http.Error(w, err.Error(), http.StatusNotFound)
	default:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	}
}
