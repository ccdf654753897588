package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/atollhq/atoll/storage/diskspace"
)

// TestNoSpaceIs507 checks that a full disk answers 507 with the spec's
// error JSON and a message that blames the registry, not the client, and
// names no file.
func TestNoSpaceIs507(t *testing.T) {
	err := fmt.Errorf("upload x: %w", diskspace.Classify(&pathError{"/data/uploads/x", syscall.ENOSPC}))
	rec := httptest.NewRecorder()
	WriteError(slog.New(slog.DiscardHandler), rec, httptest.NewRequest("PATCH", "/v2/a/blobs/uploads/x", nil), err)
	if rec.Code != http.StatusInsufficientStorage {
		t.Fatalf("status %d, want 507", rec.Code)
	}
	body := rec.Body.String()
	if !strings.Contains(body, `"code":"UNKNOWN"`) || !strings.Contains(body, "no space left on the registry's storage") {
		t.Errorf("body %s: want code UNKNOWN and the no-space message", body)
	}
	if strings.Contains(body, "/data/uploads") {
		t.Errorf("body %s names a file", body)
	}
}

type pathError struct {
	path string
	err  error
}

func (e *pathError) Error() string { return "write " + e.path + ": " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }
