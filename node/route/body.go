package route

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

// A proxied body goes from the member's socket to the client's through a
// pooled 1 MiB buffer, and is cut when the member sends nothing for
// Config.ProxyIdle: a member frozen in the middle of a body holds neither
// the client nor a goroutine for longer than that.
//
// Copied, not spliced (splice(2), which net.TCPConn.ReadFrom does, and
// which the writers here would reach: the metrics middleware keeps
// ReadFrom): on this 2-core loopback a splice costs the non-owner less CPU
// (116-118 ms per 256 MiB against 145-161) but moves fewer bytes a second
// (bare relays in one run, medians of 6: 727 MB/s spliced, 853 copied;
// make bench-cluster: 578 against 762 and 926 against 1134), and
// throughput is what a pull waits for.

// copyBody passes the n body bytes of the member's answer on conn to w and
// returns how many it passed. It fails with an error wrapping
// os.ErrDeadlineExceeded when the member sends nothing for ProxyIdle,
// io.ErrUnexpectedEOF when the member ends the body early, or the
// client's write error; conn must then be closed, not pooled.
func (rt *Router) copyBody(w http.ResponseWriter, conn *memberConn, n int64) (int64, error) {
	buf := rt.bufs.Get()
	defer rt.bufs.Put(buf)
	sent, err := io.CopyBuffer(writeOnly{w}, io.LimitReader(idleReader{conn, rt.cfg.ProxyIdle}, n), buf)
	if err == nil && sent < n {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return sent, fmt.Errorf("passing a member's body on (%d of %d bytes): %w", sent, n, err)
	}
	return sent, nil
}

// idleReader reads a member's answer, failing with an error wrapping
// os.ErrDeadlineExceeded when a read waits longer than idle.
type idleReader struct {
	c    *memberConn
	idle time.Duration
}

func (r idleReader) Read(p []byte) (int, error) {
	if err := r.c.SetReadDeadline(time.Now().Add(r.idle)); err != nil {
		return 0, err
	}
	return r.c.br.Read(p)
}

// writeOnly hides a writer's ReadFrom, so io.CopyBuffer uses its buffer.
type writeOnly struct{ io.Writer }
