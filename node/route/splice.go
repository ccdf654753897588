package route

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
)

// spliceHeaders are the member's response headers the spliced path passes
// on, besides those it sets itself.
var spliceHeaders = []string{"Content-Length", "Content-Range", "Accept-Ranges", "Last-Modified", "Etag", api.RequestIDHeader}

// spliceBlob answers a GET of blob d from the member at addr, moving the
// body from the member's socket to the client's without copying it through
// this process (splice(2) on Linux): the proxy hop then costs little more
// than the owner serving it. It needs plain HTTP on both sides and a
// connection it can take over, else it streams through proxyBlob; it
// reports false, having written nothing, when the member lacks the blob,
// fails or cannot be reached.
func (rt *Router) spliceBlob(w http.ResponseWriter, r *http.Request, addr string, d digest.Digest) bool {
	conn, err := (&net.Dialer{Timeout: 3 * time.Second}).DialContext(r.Context(), "tcp", addr)
	if err != nil {
		rt.log.Debug("splice blob: dial", "member", addr, "err", err)
		return false
	}
	defer conn.Close()
	req := &http.Request{
		Method: http.MethodGet,
		URL:    &url.URL{Scheme: "http", Host: addr, Path: blobPath(d)},
		Header: http.Header{TokenHeader: {rt.token}},
		Host:   addr,
		Close:  true,
	}
	for _, h := range blobHeaders {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	_ = conn.SetDeadline(time.Now().Add(rt.cfg.ProxyTimeout)) // a frozen member fails fast
	if err := req.Write(conn); err != nil {
		return false
	}
	owner := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(owner, req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode >= 500:
		return false
	case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent:
		// The member has the blob and answers without one (304, 416):
		// pass that on.
		for _, k := range spliceHeaders {
			if v := resp.Header.Get(k); v != "" && k != "Content-Length" {
				w.Header().Set(k, v)
			}
		}
		w.WriteHeader(resp.StatusCode)
		rt.count(ModeProxy)
		return true
	case resp.ContentLength < 0:
		return false
	}
	_ = conn.SetDeadline(time.Time{})
	client, cbuf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return rt.proxyBlob(w, r, addr, d) // not a plain HTTP/1 connection
	}
	defer client.Close()
	rt.count(ModeProxy)
	fmt.Fprintf(cbuf, "HTTP/1.1 %s\r\n", resp.Status)
	h := http.Header{
		"Content-Type":                    {"application/octet-stream"},
		"Docker-Content-Digest":           {d.String()},
		"Docker-Distribution-Api-Version": {"registry/2.0"},
		"Connection":                      {"close"},
	}
	for _, k := range spliceHeaders {
		if v := resp.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	if err := h.Write(cbuf); err != nil {
		return true
	}
	if _, err := cbuf.WriteString("\r\n"); err != nil || cbuf.Flush() != nil {
		return true
	}
	// What the reader already buffered goes first; the rest is spliced.
	buffered, _ := io.CopyN(client, owner, min(int64(owner.Buffered()), resp.ContentLength))
	if _, err := io.CopyN(client, conn, resp.ContentLength-buffered); err != nil {
		rt.log.Debug("splice blob body", "member", addr, "err", err)
	}
	return true
}
