package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/storage/filesystem"
	"github.com/atollhq/atoll/storage/metadb"
)

// newServer starts the API over real stores in a temporary directory.
func newServer(t *testing.T, cfg api.Config) *httptest.Server {
	t.Helper()
	blobs, meta := openStores(t, t.TempDir())
	return serve(t, cfg, api.Deps{Blobs: blobs, Meta: meta})
}

// openStores opens real stores in dir; the metadata closes when t ends.
func openStores(t *testing.T, dir string) (*filesystem.Store, *metadb.Store) {
	t.Helper()
	blobs, err := filesystem.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := metadb.Open(filepath.Join(dir, "metadata.db"), metadb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = meta.Close() })
	return blobs, meta
}

// serve starts the API over deps; it stops when t ends, before the stores
// openStores opened close.
func serve(t *testing.T, cfg api.Config, deps api.Deps) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(api.New(cfg, deps))
	t.Cleanup(srv.Close)
	return srv
}

// do sends one request and returns the response with its body read.
func do(t *testing.T, method, url string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body = http.NoBody
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// pushBlob uploads b monolithically into repo.
func pushBlob(t *testing.T, base, repo string, b []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(b)
	resp, _ := do(t, "POST", base+"/v2/"+repo+"/blobs/uploads/?digest="+d.String(), b)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push blob: %s", resp.Status)
	}
	return d
}

// pushImage pushes a config, one layer and an OCI manifest tagged tag.
func pushImage(t *testing.T, base, repo, tag string) (manifest []byte, d digest.Digest) {
	t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := []byte("layer of " + repo + ":" + tag)
	cd, ld := pushBlob(t, base, repo, cfg), pushBlob(t, base, repo, layer)
	manifest = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cd.String() + `","size":` + itoa(len(cfg)) + `},` +
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + ld.String() + `","size":` + itoa(len(layer)) + `}]}`)
	resp, body := do(t, "PUT", base+"/v2/"+repo+"/manifests/"+tag, manifest,
		"Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push manifest: %s %s", resp.Status, body)
	}
	return manifest, digest.FromBytes(manifest)
}

func itoa(n int) string { return strconv.Itoa(n) }

// errorCode returns the first OCI error code of a response body.
func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("not an OCI error body: %q", body)
	}
	return e.Errors[0].Code
}
