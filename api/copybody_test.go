package api

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
)

// failingWriter fails every write with err.
type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

// failingBody fails after the first read, as a client that goes away.
type failingBody struct{ read bool }

func (b *failingBody) Read(p []byte) (int, error) {
	if b.read {
		return 0, syscall.ECONNRESET
	}
	b.read = true
	return copy(p, "abc"), nil
}

// TestCopyBodyBlamesTheRightSide: a failing disk is the registry's error
// (a 5xx), a failing body is the client's (a 4xx).
func TestCopyBodyBlamesTheRightSide(t *testing.T) {
	disk := httptest.NewRequest("PATCH", "/v2/a/blobs/uploads/x", strings.NewReader("some bytes"))
	err := copyBody(failingWriter{syscall.EIO}, disk, -1)
	var e *Error
	if !errors.Is(err, syscall.EIO) || errors.As(err, &e) {
		t.Errorf("disk failure: %v, want the storage error itself (served as 500)", err)
	}
	client := httptest.NewRequest("PATCH", "/v2/a/blobs/uploads/x", io.NopCloser(&failingBody{}))
	err = copyBody(io.Discard, client, -1)
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
		t.Errorf("client failure: %v, want a 400", err)
	}
}
