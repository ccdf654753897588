package node

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/atollhq/atoll/api"
)

// recoverPanics answers a request whose handler panicked (a bug, a corrupt
// page of the metadata file) with 500 and the OCI error JSON, when the
// answer had not begun, and logs the panic with its stack. net/http would
// recover it too, but by dropping the connection, which a client reads as
// a network failure rather than a server error. An answer that had begun
// is cut off, so the client cannot take it for whole.
func recoverPanics(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		aw := &answerWriter{ResponseWriter: w}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p)
			}
			log.Error("an HTTP handler panicked", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
			if aw.began {
				panic(http.ErrAbortHandler)
			}
			api.WriteError(nil, w, r, fmt.Errorf("%s %s failed on the server: %v", r.Method, r.URL.Path, p))
		}()
		next.ServeHTTP(aw, r)
	})
}

// answerWriter notes whether the answer began: a status or bytes sent.
type answerWriter struct {
	http.ResponseWriter
	began bool
}

func (w *answerWriter) WriteHeader(code int) {
	w.began = w.began || code >= 200 // 1xx are interim
	w.ResponseWriter.WriteHeader(code)
}

func (w *answerWriter) Write(p []byte) (int, error) {
	w.began = true
	return w.ResponseWriter.Write(p)
}

// ReadFrom passes the copy on, so a blob still leaves by sendfile.
func (w *answerWriter) ReadFrom(r io.Reader) (int64, error) {
	w.began = true
	return io.Copy(w.ResponseWriter, r)
}

func (w *answerWriter) Flush() {
	w.began = true
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *answerWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
