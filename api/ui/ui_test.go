package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()

	tests := []struct {
		method, path string
		status       int
		contentType  string // prefix; "" to skip
		body         string // substring; "" to skip
	}{
		{"GET", "/ui/", 200, "text/html", `<script type="module" src="js/app.js">`},
		{"GET", "/ui/index.html", 200, "text/html", "<title>atoll registry</title>"},
		{"HEAD", "/ui/", 200, "text/html", ""},
		{"GET", "/ui/app.css", 200, "text/css", ":root"},
		{"GET", "/ui/js/app.js", 200, "text/javascript", "hashchange"},
		{"GET", "/ui/js/views/cluster.js", 200, "text/javascript", "/_atoll/v1/cluster"},
		{"GET", "/ui/js/views/usage.js", 200, "text/javascript", "getUsage"},
		{"GET", "/ui/js/views/replication.js", 200, "text/javascript", "getReplication"},
		{"GET", "/ui/favicon.svg", 200, "image/svg+xml", "<svg"},
		{"GET", "/ui/nope.js", 404, "", ""},
		{"GET", "/ui/js/", 404, "", ""},
		{"GET", "/ui/js", 404, "", ""},
		{"GET", "/ui/../go.mod", 404, "", ""},
		{"GET", "/v2/", 404, "", ""},
		{"POST", "/ui/", 405, "", ""},
		{"DELETE", "/ui/app.css", 405, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d; body %q", resp.StatusCode, tt.status, body)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("Content-Security-Policy %q lacks default-src 'self'", csp)
			}
			if tt.status != 200 {
				return
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.contentType) {
				t.Errorf("Content-Type %q, want %s", ct, tt.contentType)
			}
			if cc := resp.Header.Get("Cache-Control"); cc == "" {
				t.Error("no Cache-Control")
			}
			if resp.Header.Get("ETag") == "" {
				t.Error("no ETag")
			}
			if !strings.Contains(string(body), tt.body) {
				t.Errorf("body lacks %q", tt.body)
			}
		})
	}
}

func TestHandlerRevalidates(t *testing.T) {
	h := Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/ui/js/app.js", nil))
	etag := rec.Header().Get("ETag")
	if rec.Code != 200 || etag == "" {
		t.Fatalf("GET: status %d, ETag %q", rec.Code, etag)
	}
	req := httptest.NewRequest("GET", "/ui/js/app.js", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Errorf("conditional GET: status %d, want 304", rec.Code)
	}
}

var (
	// src="…" and href="…" in HTML.
	htmlRefRE = regexp.MustCompile(`(?:src|href)="([^"]*)"`)
	// import … from './x.js' and import './x.js' in modules.
	importRE = regexp.MustCompile(`(?m)^import\s(?:[^'"]*?\sfrom\s*)?['"]([^'"]+)['"]`)
)

// TestReferencesResolve checks that every file index.html and the modules
// refer to is embedded, and that none is fetched from another origin (the
// CSP would block it, and the interface must work offline).
func TestReferencesResolve(t *testing.T) {
	files, err := load(static, "static")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for name, f := range files {
		var refs []string
		switch path.Ext(name) {
		case ".html":
			for _, m := range htmlRefRE.FindAllStringSubmatch(string(f.body), -1) {
				refs = append(refs, m[1])
			}
		case ".js":
			for _, m := range importRE.FindAllStringSubmatch(string(f.body), -1) {
				refs = append(refs, m[1])
			}
		}
		for _, ref := range refs {
			switch {
			case strings.HasPrefix(ref, "#"), strings.HasPrefix(ref, "../v2/"):
				continue // client-side routes; the registry API beside /ui/
			case strings.Contains(ref, "//") || strings.Contains(ref, ":"):
				t.Errorf("%s refers to %q on another origin", name, ref)
				continue
			}
			target := path.Join(path.Dir(name), ref)
			if _, ok := files[target]; !ok {
				t.Errorf("%s refers to %q, which is not embedded (%s)", name, ref, target)
			}
			checked++
		}
	}
	if checked < 10 {
		t.Errorf("checked only %d references; the patterns no longer match the files", checked)
	}
}
