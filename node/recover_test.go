package node

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A handler that panics before it answers gets the client a 500 with the
// OCI error JSON; one that panics mid-answer gets its connection cut, so
// the client never takes a partial body for whole; the member goes on
// serving, and the log has the panic.
func TestRecoverPanics(t *testing.T) {
	var logged bytes.Buffer
	mux := http.NewServeMux()
	mux.HandleFunc("/before", func(http.ResponseWriter, *http.Request) { panic("page 7 expected to be a leaf") })
	mux.HandleFunc("/during", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "100")
		_, _ = w.Write([]byte("half"))
		panic("mid-answer")
	})
	mux.HandleFunc("/fine", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv := httptest.NewServer(recoverPanics(slog.New(slog.NewTextHandler(&logged, nil)), mux))

	resp, err := http.Get(srv.URL + "/before")
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Errors []struct{ Code string } }
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || err != nil || len(body.Errors) != 1 || body.Errors[0].Code != "UNKNOWN" {
		t.Errorf("a panic before the answer: %d %+v (%v), want 500 with an UNKNOWN error", resp.StatusCode, body, err)
	}

	resp, err = http.Get(srv.URL + "/during")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Errorf("a panic mid-answer: the client read the answer without an error")
	}

	resp, err = http.Get(srv.URL + "/fine")
	if err != nil {
		t.Fatalf("after the panics: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "ok" {
		t.Errorf("after the panics: %q", got)
	}
	srv.Close() // waits for the handlers, and their logs
	for _, want := range []string{"page 7 expected to be a leaf", "mid-answer", "stack="} {
		if !strings.Contains(logged.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logged.String())
		}
	}
}
