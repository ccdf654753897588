// Package ui is atoll's built-in web interface: static HTML, CSS and
// JavaScript embedded in the binary and served under /ui/. The pages run in
// the browser and talk to the registry's own HTTP API with fetch() (the
// catalog, tag lists, manifests, blobs, referrers and
// GET /_atoll/v1/cluster), so the interface shows nothing the API does not
// and honours the same authentication and delete settings.
//
// Views are client-side routes in the URL fragment: /ui/#/ (repositories),
// /ui/#/repo/<name>, /ui/#/manifest/<name>:<tag> or <name>@<digest>,
// /ui/#/usage, /ui/#/replication and /ui/#/cluster. The server only ever serves the files below static/.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// Prefix is the URL path the interface is served under; mount Handler on it.
const Prefix = "/ui/"

// ContentSecurityPolicy is sent with every file: scripts, styles and images
// come from this origin only, and the API is called on the same origin.
const ContentSecurityPolicy = "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

//go:embed static
var static embed.FS

// contentTypes maps the extensions of the embedded files to their media
// types, so answers do not depend on the host's MIME tables.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// file is one embedded file, ready to serve.
type file struct {
	body        []byte
	contentType string
	etag        string // strong validator: a prefix of the SHA-256 of body
}

// Handler serves the interface under Prefix: index.html for Prefix itself,
// the embedded assets by name, 404 for anything else. It answers GET and
// HEAD only. Every answer carries ContentSecurityPolicy; files are sent with
// "Cache-Control: no-cache" and an ETag, so browsers revalidate cheaply and
// never run a stale script after an upgrade. Safe for concurrent use.
func Handler() http.Handler {
	files, err := load(static, "static")
	if err != nil {
		// The files are compiled in; failing to read them is a build defect
		// that the package's tests catch.
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "ui: "+err.Error(), http.StatusInternalServerError)
		})
	}
	return &handler{files: files}
}

// load reads every file under root of fsys, keyed by its path below root.
func load(fsys fs.FS, root string) (map[string]file, error) {
	sub, err := fs.Sub(fsys, root)
	if err != nil {
		return nil, err
	}
	files := map[string]file{}
	err = fs.WalkDir(sub, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return fmt.Errorf("embedded file %s: no content type for its extension", name)
		}
		body, err := fs.ReadFile(sub, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		files[name] = file{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading embedded ui files: %w", err)
	}
	if _, ok := files["index.html"]; !ok {
		return nil, fmt.Errorf("embedded ui files: no index.html")
	}
	return files, nil
}

type handler struct {
	files map[string]file
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if name == "" {
		name = "index.html"
	}
	f, ok := h.files[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hdr.Set("Content-Type", f.contentType)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", f.etag)
	// ServeContent answers If-None-Match with 304, and HEAD and Range.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
}
