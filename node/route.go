package node

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/auth"
	"github.com/atollhq/atoll/storage"
)

// Request routing between members. The registry (package api) checks the
// request first (name, digest, repository link) on the member the client
// reached; then a blob this member lacks is streamed from, or redirected
// to, a member holding it, and a request for an upload session goes to the
// member holding the session, named in its id.

var _ api.Remote = (*Node)(nil)

// tokenHeader carries the cluster token on member-to-member HTTP requests.
const tokenHeader = "Atoll-Cluster-Token"

// HTTPToken derives the member-to-member HTTP token from the secret; the
// atoll CLI sends it for cluster-wide operations.
func HTTPToken(secret string) string {
	if secret == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("atoll member http v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// redirectURL is where a client is sent for blob d held by the member at
// addr. Without authentication that is the same API path there; with it,
// clients do not resend credentials to another host, so the access this
// member checked travels as a signed, short-lived URL of the member
// endpoint instead (as S3's presigned URLs do).
func (n *Node) redirectURL(addr string, r *http.Request, d digest.Digest) string {
	if n.auth == nil {
		return n.scheme + "://" + addr + r.URL.RequestURI()
	}
	expires := strconv.FormatInt(time.Now().Add(redirectValidity).Unix(), 10)
	q := url.Values{"expires": {expires}, "sig": {n.sign(d, expires)}}
	return n.scheme + "://" + addr + "/_atoll/v1/blobs/" + d.String() + "?" + q.Encode()
}

// redirectValidity bounds how long a signed blob URL works.
const redirectValidity = 5 * time.Minute

func (n *Node) sign(d digest.Digest, expires string) string {
	m := hmac.New(sha256.New, []byte(n.token))
	m.Write([]byte("blob " + d.String() + " " + expires))
	return hex.EncodeToString(m.Sum(nil))
}

// signed reports whether r carries a valid, unexpired signature for d.
func (n *Node) signed(r *http.Request, d digest.Digest) bool {
	q := r.URL.Query()
	exp, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if n.token == "" || err != nil || time.Now().Unix() > exp {
		return false
	}
	return hmac.Equal([]byte(q.Get("sig")), []byte(n.sign(d, q.Get("expires"))))
}

// trusted reports whether r comes from a member (or, on a registry open to
// all, from anyone: without a cluster secret and without authentication
// there is nothing to protect), or from an administrator on an endpoint
// that admin guards (admin.go). With authentication and no secret, member
// endpoints answer no one else.
func (n *Node) trusted(r *http.Request) bool {
	if byAdmin(r) {
		return true
	}
	if n.token == "" {
		return n.auth == nil
	}
	return hmac.Equal([]byte(r.Header.Get(tokenHeader)), []byte(n.token))
}

// ServeBlob implements api.Remote: members are tried in the blob's
// preference order, owners first.
func (n *Node) ServeBlob(w http.ResponseWriter, r *http.Request, d digest.Digest) error {
	if n.cluster == nil {
		return storage.ErrBlobUnknown
	}
	v := n.views.load()
	for _, name := range v.preference(d) {
		if name == n.name {
			continue
		}
		m := v.members[name]
		if n.cfg.Cluster.Routing == RoutingRedirect {
			has, err := n.cluster.Has(r.Context(), name, []digest.Digest{d})
			if err != nil || !has[0] {
				continue
			}
			n.metrics.blobRoutes.WithLabelValues("redirect").Inc()
			http.Redirect(w, r, n.redirectURL(m.HTTP, r, d), http.StatusTemporaryRedirect)
			return nil
		}
		proxy := n.proxyBlob
		if r.Method == http.MethodGet && n.scheme == "http" && r.ProtoMajor == 1 {
			proxy = n.spliceBlob
		}
		served, err := proxy(w, r, m.HTTP, d)
		if served || err != nil {
			return err
		}
	}
	return fmt.Errorf("%s on no member: %w", d, storage.ErrBlobUnknown)
}

// proxyBlob streams blob d from the member at addr. It reports false,
// having written nothing, when that member does not have it.
func (n *Node) proxyBlob(w http.ResponseWriter, r *http.Request, addr string, d digest.Digest) (bool, error) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, n.scheme+"://"+addr+"/_atoll/v1/blobs/"+d.String(), nil)
	if err != nil {
		return false, err
	}
	for _, h := range []string{"Range", "If-Range", "If-None-Match", "If-Modified-Since", api.RequestIDHeader} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set(tokenHeader, n.token)
	resp, err := n.blobClient.Do(req)
	if err != nil {
		n.log.Debug("proxy blob", "member", addr, "err", err)
		return false, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode >= 500 {
		return false, nil
	}
	n.metrics.blobRoutes.WithLabelValues("proxy").Inc()
	for _, h := range []string{"Content-Length", "Content-Range", "Accept-Ranges", "Last-Modified", "ETag"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Docker-Content-Digest", d.String())
	w.WriteHeader(resp.StatusCode)
	buf := proxyBufs.Get().(*[]byte)
	defer proxyBufs.Put(buf)
	_, err = io.CopyBuffer(w, resp.Body, *buf)
	if err != nil {
		// Headers are gone: the client sees a short body and retries.
		n.log.Debug("proxy blob body", "member", addr, "err", err)
	}
	return true, nil
}

// ForwardUpload implements api.Remote.
func (n *Node) ForwardUpload(w http.ResponseWriter, r *http.Request, id string) (bool, error) {
	if n.cluster == nil {
		return false, nil
	}
	holder := uploadMember(id)
	if holder == "" || holder == n.name {
		return false, nil
	}
	v := n.views.load()
	if !v.live(holder) {
		return true, fmt.Errorf("upload %s: member %s is gone: %w", id, holder, storage.ErrUploadUnknown)
	}
	target := &url.URL{Scheme: n.scheme, Host: v.members[holder].HTTP}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path, pr.Out.URL.RawPath = r.URL.Path, r.URL.RawPath
			pr.Out.Header.Set(tokenHeader, n.token)
			pr.Out.Header.Del(identityHeader)
			if id, ok := auth.FromContext(r.Context()); ok && n.auth != nil {
				pr.Out.Header.Set(identityHeader, encodeIdentity(id))
			}
			pr.SetXForwarded()
		},
		Transport: n.client.Transport,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			n.log.Warn("forwarding upload", "member", holder, "err", err)
			http.Error(w, `{"errors":[{"code":"UNAVAILABLE","message":"upload holder unreachable"}]}`, http.StatusServiceUnavailable)
		},
	}
	n.metrics.uploadForwards.Inc()
	proxy.ServeHTTP(w, r)
	return true, nil
}

// newUploadID names an upload session after this member, so any member can
// send its requests here.
func (n *Node) newUploadID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return n.name + "." + hex.EncodeToString(b)
}

// uploadMember returns the member named in an upload id, or "".
func uploadMember(id string) string {
	i := strings.LastIndexByte(id, '.')
	if i <= 0 {
		return ""
	}
	return id[:i]
}

// serveLocalBlob answers members' GET and HEAD of a blob held here.
func (n *Node) serveLocalBlob(w http.ResponseWriter, r *http.Request) {
	d, err := digest.Parse(r.PathValue("digest"))
	if err != nil {
		http.Error(w, "bad digest", http.StatusBadRequest)
		return
	}
	if !n.trusted(r) && !n.signed(r, d) {
		http.Error(w, "cluster token required", http.StatusUnauthorized)
		return
	}
	b, err := n.readLocal(r.Context(), d)
	if errors.Is(err, storage.ErrBlobUnknown) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer b.Close()
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Type", "application/octet-stream")
	var content io.ReadSeeker = b
	if f, ok := b.(interface{ OSFile() *os.File }); ok {
		content = f.OSFile()
	}
	http.ServeContent(w, r, "", b.ModTime(), content)
}

var proxyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}
