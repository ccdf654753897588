package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
)

// TestErrorPaths sends bad requests and checks each gets the spec's status
// and error code.
func TestErrorPaths(t *testing.T) {
	srv := newServer(t, api.Config{MaxManifestSize: 64 << 10})
	base := srv.URL
	manifest, md := pushImage(t, base, "lib/app", "v1")
	other := pushBlob(t, base, "other", []byte("only in other"))
	missing := digest.FromString("never pushed")
	small := pushBlob(t, base, "lib/app", []byte("0123456789"))
	newUpload := func(repo string) string {
		resp, _ := do(t, "POST", base+"/v2/"+repo+"/blobs/uploads/", nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("start upload: %s", resp.Status)
		}
		return resp.Header.Get("Location")
	}
	ociManifest := "application/vnd.oci.image.manifest.v1+json"
	missingLayer := []byte(`{"schemaVersion":2,"mediaType":"` + ociManifest + `","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		missing.String() + `","size":2},"layers":[]}`)

	for _, tc := range []struct {
		name    string
		method  string
		path    func() string
		body    []byte
		header  []string
		status  int
		code    string
		checkFn func(t *testing.T, resp *http.Response)
	}{
		{name: "uppercase name", method: "GET", path: p("/v2/Lib/App/tags/list"), status: 400, code: "NAME_INVALID"},
		{name: "name too long", method: "GET", path: p("/v2/" + strings.Repeat("a/", 128) + "a/tags/list"), status: 400, code: "NAME_INVALID"},
		{name: "dot-dot in name", method: "GET", path: p("/v2/lib/../app/tags/list"), status: 400, code: "NAME_INVALID"},
		{name: "encoded slash in name", method: "GET", path: p("/v2/lib%2Fapp/tags/list"), status: 400, code: "NAME_INVALID"},
		{name: "malformed digest", method: "GET", path: p("/v2/lib/app/blobs/sha256:xyz"), status: 400, code: "DIGEST_INVALID"},
		{name: "unsupported algorithm", method: "GET", path: p("/v2/lib/app/blobs/md5:d41d8cd98f00b204e9800998ecf8427e"), status: 400, code: "DIGEST_INVALID"},
		{name: "missing blob", method: "GET", path: p("/v2/lib/app/blobs/" + missing.String()), status: 404, code: "BLOB_UNKNOWN"},
		{name: "blob of another repository", method: "GET", path: p("/v2/lib/app/blobs/" + other.String()), status: 404, code: "BLOB_UNKNOWN"},
		{name: "head blob of another repository", method: "HEAD", path: p("/v2/lib/app/blobs/" + other.String()), status: 404},
		{name: "range past the end", method: "GET", path: p("/v2/lib/app/blobs/" + small.String()), header: []string{"Range", "bytes=100-200"}, status: 416},
		{name: "range served", method: "GET", path: p("/v2/lib/app/blobs/" + small.String()), header: []string{"Range", "bytes=2-4"}, status: 206,
			checkFn: func(t *testing.T, resp *http.Response) {
				if got := resp.Header.Get("Content-Range"); got != "bytes 2-4/10" {
					t.Errorf("Content-Range = %q", got)
				}
			}},
		{name: "unknown tag", method: "GET", path: p("/v2/lib/app/manifests/nope"), status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "invalid tag", method: "GET", path: p("/v2/lib/app/manifests/-bad"), status: 400, code: "MANIFEST_INVALID"},
		{name: "unknown manifest digest", method: "GET", path: p("/v2/lib/app/manifests/" + missing.String()), status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "manifest through another repository", method: "GET", path: p("/v2/other/manifests/" + md.String()), status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "unknown repository tags", method: "GET", path: p("/v2/no/such/tags/list"), status: 404, code: "NAME_UNKNOWN"},
		{name: "bad page size", method: "GET", path: p("/v2/lib/app/tags/list?n=-1"), status: 400},
		{name: "accept excludes media type", method: "GET", path: p("/v2/lib/app/manifests/v1"),
			header: []string{"Accept", "application/vnd.docker.distribution.manifest.v2+json"}, status: 404, code: "MANIFEST_UNKNOWN"},
		{name: "oversized manifest", method: "PUT", path: p("/v2/lib/app/manifests/big"), body: make([]byte, 65<<10),
			header: []string{"Content-Type", ociManifest}, status: 413, code: "SIZE_INVALID"},
		{name: "manifest not JSON", method: "PUT", path: p("/v2/lib/app/manifests/bad"), body: []byte("{not json"),
			header: []string{"Content-Type", ociManifest}, status: 400, code: "MANIFEST_INVALID"},
		{name: "deeply nested manifest", method: "PUT", path: p("/v2/lib/app/manifests/deep"),
			body:   []byte(`{"schemaVersion":2,"annotations":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`),
			header: []string{"Content-Type", ociManifest}, status: 400, code: "MANIFEST_INVALID"},
		{name: "unknown manifest media type", method: "PUT", path: p("/v2/lib/app/manifests/bad"), body: manifest,
			header: []string{"Content-Type", "text/plain"}, status: 400, code: "MANIFEST_INVALID"},
		{name: "media type disagrees with body", method: "PUT", path: p("/v2/lib/app/manifests/bad"), body: manifest,
			header: []string{"Content-Type", "application/vnd.docker.distribution.manifest.v2+json"}, status: 400, code: "MANIFEST_INVALID"},
		{name: "schema 1 manifest", method: "PUT", path: p("/v2/lib/app/manifests/old"), body: []byte(`{"schemaVersion":1,"name":"lib/app"}`),
			header: []string{"Content-Type", "application/vnd.docker.distribution.manifest.v1+prettyjws"}, status: 400, code: "MANIFEST_INVALID"},
		{name: "manifest with missing config", method: "PUT", path: p("/v2/lib/app/manifests/broken"), body: missingLayer,
			header: []string{"Content-Type", ociManifest}, status: 400, code: "MANIFEST_BLOB_UNKNOWN"},
		{name: "manifest digest mismatch", method: "PUT", path: p("/v2/lib/app/manifests/" + missing.String()), body: manifest,
			header: []string{"Content-Type", ociManifest}, status: 400, code: "DIGEST_INVALID"},
		{name: "patch unknown upload", method: "PATCH", path: p("/v2/lib/app/blobs/uploads/nope"), body: []byte("x"), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "upload used from another repository", method: "PATCH", path: func() string {
			return strings.Replace(newUpload("lib/app"), "/lib/app/", "/other/", 1)
		}, body: []byte("x"), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "chunk out of order", method: "PATCH", path: func() string { return newUpload("lib/app") }, body: []byte("abc"),
			header: []string{"Content-Range", "5-7"}, status: 416, code: "BLOB_UPLOAD_INVALID",
			checkFn: func(t *testing.T, resp *http.Response) {
				if got := resp.Header.Get("Range"); got != "0-0" {
					t.Errorf("Range = %q, want 0-0", got)
				}
			}},
		{name: "malformed Content-Range", method: "PATCH", path: func() string { return newUpload("lib/app") }, body: []byte("abc"),
			header: []string{"Content-Range", "0-"}, status: 400, code: "BLOB_UPLOAD_INVALID"},
		{name: "Content-Range disagrees with length", method: "PATCH", path: func() string { return newUpload("lib/app") }, body: []byte("abc"),
			header: []string{"Content-Range", "0-9"}, status: 400, code: "SIZE_INVALID"},
		{name: "finish without digest", method: "PUT", path: func() string { return newUpload("lib/app") }, status: 400, code: "DIGEST_INVALID"},
		{name: "monolithic digest mismatch", method: "POST", path: p("/v2/lib/app/blobs/uploads/?digest=" + missing.String()), body: []byte("other bytes"),
			status: 400, code: "DIGEST_INVALID"},
		{name: "mount from invalid name", method: "POST", path: p("/v2/lib/app/blobs/uploads/?mount=" + other.String() + "&from=Bad"), status: 400, code: "NAME_INVALID"},
		{name: "mount of unlinked blob starts an upload", method: "POST", path: p("/v2/lib/app/blobs/uploads/?mount=" + other.String() + "&from=lib/app"), status: 202},
		{name: "unknown route", method: "GET", path: p("/v3/"), status: 404},
		{name: "method not allowed", method: "PATCH", path: p("/v2/lib/app/manifests/v1"), status: 405, code: "UNSUPPORTED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, tc.method, base+tc.path(), tc.body, tc.header...)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s: status %d, want %d; body %s", tc.method, tc.path(), resp.StatusCode, tc.status, body)
			}
			if tc.code != "" {
				if got := errorCode(t, body); got != tc.code {
					t.Errorf("code %s, want %s", got, tc.code)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("error Content-Type %q", ct)
				}
			}
			if tc.checkFn != nil {
				tc.checkFn(t, resp)
			}
		})
	}
}

func p(s string) func() string { return func() string { return s } }
