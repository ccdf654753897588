package route

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

// A proxied body goes from the member's socket to the client's, and is
// cut when the member sends nothing for Config.ProxyIdle: a member frozen
// in the middle of a body holds neither the client nor a goroutine for
// longer than that.

// spliceChunk is how much of a body one ReadFrom moves under one read
// deadline on the spliced path.
const spliceChunk = 1 << 20

// copyBody passes the n body bytes of the member's answer on conn to w and
// returns how many it passed. It fails with an error wrapping
// os.ErrDeadlineExceeded when the member sends nothing for ProxyIdle
// (on the spliced path: sends less than spliceChunk bytes in ProxyIdle),
// io.ErrUnexpectedEOF when the member ends the body early, or the
// client's write error; conn must then be closed, not pooled.
//
// Over a plain HTTP/1 client connection, with a writer chain that keeps
// ReadFrom (the metrics middleware does, and counts), the bytes go socket
// to socket (splice(2), in net.TCPConn.ReadFrom): they never enter user
// space. Otherwise they go through a pooled 1 MiB buffer.
func (rt *Router) copyBody(w http.ResponseWriter, r *http.Request, conn *memberConn, n int64) (int64, error) {
	rf, ok := w.(io.ReaderFrom)
	if !ok || r.TLS != nil || r.ProtoMajor != 1 {
		buf := rt.bufs.Get()
		defer rt.bufs.Put(buf)
		sent, err := io.CopyBuffer(writeOnly{w}, io.LimitReader(idleReader{conn, rt.cfg.ProxyIdle}, n), buf)
		return sent, bodyErr(sent, n, err)
	}
	// What the header read buffered goes first; the rest is read from
	// the socket itself, leaving conn.br empty for the next answer.
	sent, err := io.CopyN(writeOnly{w}, conn.br, min(int64(conn.br.Buffered()), n))
	for err == nil && sent < n {
		if err = conn.SetReadDeadline(time.Now().Add(rt.cfg.ProxyIdle)); err != nil {
			break
		}
		chunk := min(n-sent, spliceChunk)
		var m int64
		m, err = rf.ReadFrom(&io.LimitedReader{R: conn.TCPConn, N: chunk})
		sent += m
		if err == nil && m < chunk {
			err = io.ErrUnexpectedEOF
		}
	}
	return sent, bodyErr(sent, n, err)
}

// bodyErr is the error of a copy that passed sent of n bytes.
func bodyErr(sent, n int64, err error) error {
	if err == nil && sent < n {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fmt.Errorf("passing a member's body on (%d of %d bytes): %w", sent, n, err)
	}
	return nil
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
