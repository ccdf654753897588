package node

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

// spliceBlob answers a GET of blob d from the member at addr, moving the
// body from the member's socket to the client's without copying it through
// this process (splice(2) on Linux): the proxy hop then costs little more
// than the owner serving it. It needs plain HTTP on both sides and a
// connection it can take over; it reports false, having written nothing,
// when the member lacks the blob or cannot be reached.
func (n *Node) spliceBlob(w http.ResponseWriter, r *http.Request, addr string, d digest.Digest) (bool, error) {
	conn, err := (&net.Dialer{Timeout: 3 * time.Second}).DialContext(r.Context(), "tcp", addr)
	if err != nil {
		return false, nil
	}
	defer conn.Close()
	req := &http.Request{
		Method: http.MethodGet,
		URL:    &url.URL{Scheme: "http", Host: addr, Path: "/_atoll/v1/blobs/" + d.String()},
		Header: http.Header{tokenHeader: {n.token}},
		Host:   addr,
		Close:  true,
	}
	for _, h := range []string{"Range", "If-Range", api.RequestIDHeader} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second)) // a frozen member fails fast
	if err := req.Write(conn); err != nil {
		return false, nil
	}
	owner := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(owner, req)
	if err != nil {
		return false, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		// The member has the blob; the range is wrong: say so.
		w.Header().Set("Content-Range", resp.Header.Get("Content-Range"))
		w.WriteHeader(resp.StatusCode)
		return true, nil
	}
	if (resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent) || resp.ContentLength < 0 {
		return false, nil
	}
	_ = conn.SetDeadline(time.Time{})
	client, cbuf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false, nil // not a plain HTTP/1 connection: stream it instead
	}
	defer client.Close()
	n.metrics.blobRoutes.WithLabelValues("proxy").Inc()
	fmt.Fprintf(cbuf, "HTTP/1.1 %s\r\n", resp.Status)
	h := http.Header{
		"Content-Type":                    {"application/octet-stream"},
		"Docker-Content-Digest":           {d.String()},
		"Docker-Distribution-Api-Version": {"registry/2.0"},
		"Connection":                      {"close"},
	}
	for _, k := range []string{"Content-Length", "Content-Range", "Accept-Ranges", "Last-Modified", "Etag", api.RequestIDHeader} {
		if v := resp.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	if err := h.Write(cbuf); err != nil {
		return true, nil
	}
	if _, err := cbuf.WriteString("\r\n"); err != nil || cbuf.Flush() != nil {
		return true, nil
	}
	// What the reader already buffered goes first; the rest is spliced.
	buffered, _ := io.CopyN(client, owner, min(int64(owner.Buffered()), resp.ContentLength))
	if _, err := io.CopyN(client, conn, resp.ContentLength-buffered); err != nil {
		n.log.Debug("splice blob body", "member", addr, "err", err)
	}
	return true, nil
}
