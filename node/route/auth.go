package route

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/auth"
	"github.com/atollhq/atoll/storage"
)

// TokenHeader carries the member token on member-to-member HTTP requests.
const TokenHeader = "Atoll-Cluster-Token"

// PassedOnHeader names the member that passed a client's request on whole
// to this one, as a member that is catching up does (package node). Such
// a request's blob is streamed from a holder, never redirected to it: the
// holder may be the member catching up, which would pass the client's
// request on again, in a loop.
const PassedOnHeader = "X-Atoll-Catching-Up"

// identityHeader carries the identity of a forwarded request's client,
// vouched for by the member token; the receiving member checks that
// identity's access again before serving it (MemberIdentity).
const identityHeader = "Atoll-Identity"

// redirectValidity bounds how long a signed blob URL works.
const redirectValidity = 5 * time.Minute

// Token derives the member-to-member HTTP token from the cluster secret;
// "" without one. The atoll CLI sends it for cluster-wide operations.
func Token(secret string) string {
	if secret == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("atoll member http v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// Trusted reports whether r comes from a member: it carries the member
// token. On a registry open to all (no cluster secret, no Deps.Access)
// everyone is trusted, there being nothing to protect; with
// authentication and no secret, no one is.
func (rt *Router) Trusted(r *http.Request) bool {
	if rt.token == "" {
		return rt.deps.Access == nil
	}
	return hmac.Equal([]byte(r.Header.Get(TokenHeader)), []byte(rt.token))
}

// redirectURL is where a client is sent for blob d held by the member at
// addr. Without authentication that is the same API path there; with it,
// clients do not resend credentials to another host, so the access this
// member checked travels as a signed, short-lived URL of the member
// endpoint instead (as S3's presigned URLs do).
func (rt *Router) redirectURL(addr string, r *http.Request, d digest.Digest) string {
	if rt.deps.Access == nil {
		return rt.cfg.Scheme + "://" + addr + r.URL.RequestURI()
	}
	expires := strconv.FormatInt(time.Now().Add(redirectValidity).Unix(), 10)
	q := url.Values{"expires": {expires}, "sig": {rt.sign(d, expires)}}
	return rt.cfg.Scheme + "://" + addr + blobPath(d) + "?" + q.Encode()
}

func (rt *Router) sign(d digest.Digest, expires string) string {
	m := hmac.New(sha256.New, []byte(rt.token))
	m.Write([]byte("blob " + d.String() + " " + expires))
	return hex.EncodeToString(m.Sum(nil))
}

// signed reports whether r carries a valid, unexpired signature for d.
func (rt *Router) signed(r *http.Request, d digest.Digest) bool {
	q := r.URL.Query()
	exp, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if rt.token == "" || err != nil || time.Now().Unix() > exp {
		return false
	}
	return hmac.Equal([]byte(q.Get("sig")), []byte(rt.sign(d, q.Get("expires"))))
}

// ServeMember answers GET and HEAD of BlobPath+"{digest}" for a blob held
// here: to members (proxied reads, copies) and to redirected clients with a
// signed URL.
func (rt *Router) ServeMember(w http.ResponseWriter, r *http.Request) {
	d, err := digest.Parse(r.PathValue("digest"))
	if err != nil {
		api.WriteError(rt.log, w, r, fmt.Errorf("%w: %w", api.ErrDigestInvalid, err))
		return
	}
	if !rt.Trusted(r) && !rt.signed(r, d) {
		api.WriteError(rt.log, w, r, &api.Refusal{Err: api.ErrUnauthorized, Message: "member token or a valid signed URL required"})
		return
	}
	b, err := rt.deps.Blobs.Open(r.Context(), d)
	if err != nil {
		if !errors.Is(err, storage.ErrBlobUnknown) {
			err = fmt.Errorf("member read of %s: %w", d, err)
		}
		api.WriteError(rt.log, w, r, err)
		return
	}
	defer b.Close()
	api.ServeBlobContent(w, r, d, b)
}

// MemberIdentity serves requests forwarded by members as their client,
// after checking that client's access here, and passes the rest to next.
func (rt *Router) MemberIdentity(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get(identityHeader)
		if h == "" {
			next.ServeHTTP(w, r)
			return
		}
		id, ok := decodeIdentity(h)
		if !ok || rt.token == "" || rt.deps.Access == nil || !rt.Trusted(r) {
			api.WriteError(rt.log, w, r, &api.Refusal{Err: api.ErrUnauthorized, Message: "forwarded identity without a valid member token"})
			return
		}
		for _, s := range auth.Scopes(r) {
			for _, action := range s.Actions {
				if !rt.deps.Access.Allowed(id, s.Repository, action) {
					api.WriteError(rt.log, w, r, api.ErrDenied)
					return
				}
			}
		}
		next.ServeHTTP(w, r.WithContext(auth.ContextWithIdentity(r.Context(), id)))
	})
}

func encodeIdentity(id auth.Identity) string {
	b, _ := json.Marshal(id)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeIdentity(s string) (auth.Identity, bool) {
	var id auth.Identity
	b, err := base64.RawURLEncoding.DecodeString(s)
	return id, err == nil && json.Unmarshal(b, &id) == nil
}
