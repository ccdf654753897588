package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/filesystem"
	"github.com/atollhq/atoll/storage/metadb"
)

// BenchmarkGetManifest serves a manifest GET by tag and by digest from the
// metadata cache, through the whole handler (routing, lookup, headers),
// without a network: run it with -benchmem for the allocations a request
// costs.
func BenchmarkGetManifest(b *testing.B) {
	dir := b.TempDir()
	blobs, err := filesystem.New(dir)
	if err != nil {
		b.Fatal(err)
	}
	meta, err := metadb.Open(filepath.Join(dir, "metadata.db"), metadb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer meta.Close()
	content := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`)
	m := &storage.Manifest{Content: content, Descriptor: v1.Descriptor{
		MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(content), Size: int64(len(content))}}
	if err := meta.PutManifest(context.Background(), "a/b", m, "latest"); err != nil {
		b.Fatal(err)
	}
	h := api.New(api.Config{}, api.Deps{Blobs: blobs, Meta: meta})
	for _, ref := range []string{"latest", m.Descriptor.Digest.String()} {
		b.Run(map[bool]string{true: "tag", false: "digest"}[ref == "latest"], func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/v2/a/b/manifests/"+ref, nil)
			req.Header.Set("Accept", v1.MediaTypeImageManifest)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("GET: %d %s", w.Code, w.Body)
				}
			}
		})
	}
}
