package route

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
)

// countingWriter is what a metrics middleware sees of an answer.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int
}

func (w *countingWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += n
	return n, err
}

// TestStreamedReadsPooledAndCounted reads a blob 50 times through a
// member that lacks it: the owner accepts one connection, which survives
// the owner closing it (the next read dials again), and the middleware
// sees each answer's real status and bytes.
func TestStreamedReadsPooledAndCounted(t *testing.T) {
	blob := []byte("0123456789 layer bytes")
	d := digest.FromBytes(blob)
	ownerRouter := New(Config{Self: "owner-7", Secret: secret}, Deps{Blobs: memBlobs{d: blob}})
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+BlobPath+"{digest}", ownerRouter.ServeMember)
	owner := httptest.NewUnstartedServer(mux)
	var accepted atomic.Int64
	owner.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			accepted.Add(1)
		}
	}
	owner.Start()
	t.Cleanup(owner.Close)
	members := &fakeMembers{order: []string{"owner-7", "front-1"}, addrs: map[string]string{"owner-7": host(owner)}}
	front := New(Config{Self: "front-1", Secret: secret}, Deps{Members: members, Blobs: memBlobs{}})

	read := func(method, rng string) *countingWriter {
		t.Helper()
		r := httptest.NewRequest(method, "/v2/team/app/blobs/"+d.String(), nil)
		if rng != "" {
			r.Header.Set("Range", rng)
		}
		w := &countingWriter{ResponseWriter: httptest.NewRecorder(), status: http.StatusOK}
		if err := front.ServeBlob(w, r, d); err != nil {
			t.Fatal(err)
		}
		return w
	}
	for i := range 50 {
		if w := read("GET", ""); w.status != http.StatusOK || w.n != len(blob) {
			t.Fatalf("GET %d: middleware saw %d and %d bytes, want 200 and %d", i, w.status, w.n, len(blob))
		}
	}
	if w := read("HEAD", ""); w.status != http.StatusOK || w.n != 0 {
		t.Fatalf("HEAD: %d, %d bytes", w.status, w.n)
	}
	if w := read("GET", "bytes=2-4"); w.status != http.StatusPartialContent || w.n != 3 {
		t.Fatalf("range: %d, %d bytes", w.status, w.n)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("52 reads opened %d connections to the owner, want 1", n)
	}
	owner.CloseClientConnections()
	if w := read("GET", ""); w.status != http.StatusOK || w.n != len(blob) {
		t.Fatalf("GET after the owner closed the pooled connection: %d, %d bytes", w.status, w.n)
	}
}
