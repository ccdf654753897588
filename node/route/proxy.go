package route

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/auth"
	"github.com/atollhq/atoll/storage"
)

// One proxy carries every request a member passes to another: blob reads
// from members serving https (proxyBlob) and upload sessions
// (ForwardUpload), through httputil.ReverseProxy over pooled connections.
// Blob reads from members serving plain http take the streamed path
// (stream.go) over connections of its own, which passes the same answer on.

// blobHeaders are the client's headers a proxied blob read takes to the
// member, on either path; the member's answer comes back whole, as
// api.ServeBlobContent wrote it there.
var blobHeaders = []string{"Range", "If-Range", "If-None-Match", "If-Modified-Since", api.RequestIDHeader}

// errNotServed makes the proxy give up on a member that lacks the blob or
// fails, before anything is written to the client.
var errNotServed = errors.New("member did not serve the blob")

// proxyBlob streams blob d from the member at addr. It reports false,
// having written nothing, when that member does not have it, fails or
// cannot be reached.
func (rt *Router) proxyBlob(w http.ResponseWriter, r *http.Request, addr string, d digest.Digest) bool {
	served := true
	p := rt.proxy(addr, func(pr *httputil.ProxyRequest) {
		pr.Out.URL.Path, pr.Out.URL.RawPath, pr.Out.URL.RawQuery = blobPath(d), "", ""
		pr.Out.Header = http.Header{}
		for _, h := range blobHeaders {
			if v := r.Header.Get(h); v != "" {
				pr.Out.Header.Set(h, v)
			}
		}
	})
	p.Transport = rt.blobs.Transport
	p.ModifyResponse = func(resp *http.Response) error {
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode >= 500 {
			return errNotServed
		}
		rt.count(ModeProxy)
		return nil
	}
	p.ErrorHandler = func(_ http.ResponseWriter, _ *http.Request, err error) {
		served = false
		rt.log.Debug("proxy blob", "member", addr, "blob", d, "err", err)
	}
	p.ServeHTTP(w, r)
	return served
}

// ForwardUpload implements api.Remote: a request for an upload session
// held by another member is passed to it whole, with the client's identity
// when clients authenticate (auth.go).
func (rt *Router) ForwardUpload(w http.ResponseWriter, r *http.Request, id string) (bool, error) {
	ms := rt.deps.Members
	if ms == nil {
		return false, nil
	}
	holder := UploadMember(id)
	if holder == "" || holder == rt.cfg.Self {
		return false, nil
	}
	addr, live := ms.Addr(holder)
	if !live {
		return true, fmt.Errorf("upload %s: member %s is gone: %w", id, holder, storage.ErrUploadUnknown)
	}
	p := rt.proxy(addr, func(pr *httputil.ProxyRequest) {
		pr.Out.URL.Path, pr.Out.URL.RawPath = r.URL.Path, r.URL.RawPath
		pr.Out.Header.Del(identityHeader)
		if id, ok := auth.FromContext(r.Context()); ok && rt.deps.Access != nil {
			pr.Out.Header.Set(identityHeader, encodeIdentity(id))
		}
		pr.SetXForwarded()
	})
	p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		api.WriteError(rt.log, w, r, fmt.Errorf("forwarding upload %s to member %s: %w: %w", id, holder, storage.ErrUnavailable, err))
	}
	if rt.deps.Forwarded != nil {
		rt.deps.Forwarded.Inc()
	}
	p.ServeHTTP(w, r)
	return true, nil
}

// proxy returns the proxy to the member at addr: rewrite adjusts the
// outgoing request, which then carries the member token.
func (rt *Router) proxy(addr string, rewrite func(*httputil.ProxyRequest)) *httputil.ReverseProxy {
	target := &url.URL{Scheme: rt.cfg.Scheme, Host: addr}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			rewrite(pr)
			pr.Out.Header.Set(TokenHeader, rt.token)
		},
		Transport:  rt.members.Transport,
		BufferPool: rt.bufs,
	}
}

func blobPath(d digest.Digest) string { return BlobPath + d.String() }

// BlobPath is the members' endpoint serving the blobs a member holds
// (ServeMember): GET or HEAD BlobPath+digest.
const BlobPath = "/_atoll/v1/blobs/"

// Transport pools connections to other members. A member that accepts
// connections but does not answer (frozen, overloaded) fails a request
// after headerTimeout, when set, so the caller tries another.
func Transport(headerTimeout time.Duration) *http.Transport {
	return &http.Transport{
		// Members' certificates name the registry's public host, not the
		// addresses members use; the member token authenticates them.
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
		DialContext:           (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: headerTimeout,
	}
}

// bufferPool lends the proxies their copy buffers.
type bufferPool struct{ p sync.Pool }

func newBufferPool(size int) *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, size); return &b }}}
}

func (bp *bufferPool) Get() []byte  { return *bp.p.Get().(*[]byte) }
func (bp *bufferPool) Put(b []byte) { bp.p.Put(&b) }
