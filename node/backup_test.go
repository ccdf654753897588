package node

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type fakeBackupper string

func (f fakeBackupper) Backup(w io.Writer, size func(int64)) (int64, error) {
	size(int64(len(f)))
	n, err := io.WriteString(w, string(f))
	return int64(n), err
}

// A member catching up answers a backup with 503, never a partial copy;
// once caught up, the copy with its length.
func TestServeBackup(t *testing.T) {
	caughtUp := false
	h := serveBackup(fakeBackupper("bbolt file"), func() bool { return caughtUp }, slog.New(slog.DiscardHandler))
	w := httptest.NewRecorder()
	h(w, httptest.NewRequest(http.MethodGet, backupPath, nil))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "UNAVAILABLE") {
		t.Errorf("while catching up: %d %q %s, want 503 UNAVAILABLE with Retry-After", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	caughtUp = true
	w = httptest.NewRecorder()
	h(w, httptest.NewRequest(http.MethodGet, backupPath, nil))
	if w.Code != http.StatusOK || w.Body.String() != "bbolt file" || w.Header().Get("Content-Length") != "10" {
		t.Errorf("caught up: %d %q (Content-Length %s)", w.Code, w.Body, w.Header().Get("Content-Length"))
	}
}
