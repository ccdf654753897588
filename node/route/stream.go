package route

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/opencontainers/go-digest"
)

// The streamed path reads a blob from a member over plain HTTP/1 and
// passes the member's answer on whole: its status, its headers (less a
// connection's own) and its body (body.go), in writes of up to 1 MiB
// through the client's ResponseWriter. Nothing is hijacked: the
// middleware sees the real status and bytes, configured headers stay, and
// both connections are kept: the member's go back to a pool (connPool).

// hopHeaders belong to one connection and are never passed on (RFC 9110
// section 7.6.1).
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// streamBlob answers a GET or HEAD of blob d from the member at addr. It
// reports false, having written nothing, when the member lacks the blob,
// fails or cannot be reached.
func (rt *Router) streamBlob(w http.ResponseWriter, r *http.Request, addr string, d digest.Digest) bool {
	conn, resp, err := rt.askMember(r, addr, d)
	if err != nil {
		rt.log.Debug("stream blob", "member", addr, "blob", d, "err", err)
		return false
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode >= 500 {
		_ = conn.Close()
		return false
	}
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
	rt.count(ModeProxy)
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead || resp.StatusCode == http.StatusNotModified || resp.ContentLength == 0 {
		rt.conns.put(addr, conn, resp)
		return true
	}
	if resp.ContentLength < 0 { // not how members answer: copied, not kept
		_, _ = io.Copy(w, idleReader{conn, rt.cfg.ProxyIdle})
		_ = conn.Close()
		return true
	}
	n, err := rt.copyBody(w, conn, resp.ContentLength)
	if err != nil {
		// The client sees a cut: fewer bytes than Content-Length, and net/http
		// closes its connection. The member's connection is not kept.
		rt.log.Warn("stream blob body", "member", addr, "blob", d, "sent", n, "of", resp.ContentLength, "err", err)
		_ = conn.Close()
		return true
	}
	rt.conns.put(addr, conn, resp)
	return true
}

// askMember sends r's read of blob d to the member at addr and reads the
// answer's headers within ProxyTimeout. A pooled connection the member
// has closed meanwhile is replaced by another.
func (rt *Router) askMember(r *http.Request, addr string, d digest.Digest) (*memberConn, *http.Response, error) {
	req := &http.Request{
		Method: r.Method,
		URL:    &url.URL{Scheme: "http", Host: addr, Path: blobPath(d)},
		Header: http.Header{TokenHeader: {rt.token}},
		Host:   addr,
	}
	for _, h := range blobHeaders {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	for {
		conn, err := rt.conns.get(r.Context(), addr)
		if err != nil {
			return nil, nil, err
		}
		_ = conn.SetDeadline(time.Now().Add(rt.cfg.ProxyTimeout)) // a frozen member fails fast
		err = req.Write(conn)
		var resp *http.Response
		if err == nil {
			resp, err = http.ReadResponse(conn.br, req)
		}
		if err == nil {
			_ = conn.SetDeadline(time.Time{})
			return conn, resp, nil
		}
		_ = conn.Close()
		if !conn.reused || errors.Is(err, os.ErrDeadlineExceeded) || r.Context().Err() != nil {
			return nil, nil, fmt.Errorf("asking member %s for %s: %w", addr, d, err)
		}
	}
}
