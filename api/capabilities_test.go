package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/filesystem"
	"github.com/atollhq/atoll/storage/metadb"
)

// The handlers hold narrow views of Deps.Meta and Deps.Blobs (one small
// interface each), yet the optional capabilities of the stores given must
// still be found by type assertion, as when a Registry held them whole.

// capStores are real stores, and a blob store with the optional
// capabilities a cluster's has.
type capStores struct {
	meta  *metadb.Store
	blobs *capBlobs
}

// capBlobs adds KnownDigestWriter and URLSigner to a filesystem store,
// recording their calls.
type capBlobs struct {
	*filesystem.Store
	mu         sync.Mutex
	writerFor  []digest.Digest
	signedURLs bool
}

func (b *capBlobs) WriterFor(ctx context.Context, id string, d digest.Digest) (storage.BlobWriter, error) {
	b.mu.Lock()
	b.writerFor = append(b.writerFor, d)
	b.mu.Unlock()
	return b.Writer(ctx, id, nil)
}

func (b *capBlobs) URLFor(_ context.Context, d digest.Digest, _ time.Duration) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.signedURLs {
		return "", storage.ErrUnavailable
	}
	return "https://bucket.example/" + d.Encoded(), nil
}

// sizePolicy records the sizes it is asked to allow blobs at.
type sizePolicy struct {
	mu    sync.Mutex
	sizes map[digest.Digest]int64
}

func (p *sizePolicy) AllowBlob(_ context.Context, _ string, d digest.Digest, size int64) (func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sizes[d] = size
	return func() {}, nil
}

func (p *sizePolicy) AllowManifest(context.Context, string, string, digest.Digest, int64) (func(), error) {
	return func() {}, nil
}

func (p *sizePolicy) AllowDelete(context.Context, string, string, digest.Digest) error { return nil }

func newCapServer(t *testing.T, policy api.Policy) (*httptest.Server, capStores) {
	t.Helper()
	fs, meta := openStores(t, t.TempDir())
	s := capStores{meta: meta, blobs: &capBlobs{Store: fs}}
	return serve(t, api.Config{}, api.Deps{Blobs: s.blobs, Meta: meta, Policy: policy}), s
}

// An anonymous mount finds a blob linked in another repository through the
// metadata's Inventory (the bytes may be on other members: here, nowhere)
// and its size through BlobSize.
func TestMountUsesMetadataCapabilities(t *testing.T) {
	policy := &sizePolicy{sizes: map[digest.Digest]int64{}}
	srv, s := newCapServer(t, policy)
	d := digest.FromString("held by another member")
	if err := s.meta.LinkBlob(context.Background(), "a/src", d, 1234); err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, "POST", srv.URL+"/v2/b/dst/blobs/uploads/?mount="+d.String(), nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("anonymous mount: %d %s; want 201 (Inventory not seen)", resp.StatusCode, body)
	}
	policy.mu.Lock()
	size := policy.sizes[d]
	policy.mu.Unlock()
	if size != 1234 {
		t.Errorf("policy asked for size %d; want 1234 (BlobSize not seen)", size)
	}
	if !s.meta.BlobLinked("b/dst", d) {
		t.Errorf("b/dst does not link %s after the mount", d)
	}
}

// A monolithic upload opens its writer through KnownDigestWriter, and a
// blob GET redirects where the store signs URLs.
func TestBlobsUseStoreCapabilities(t *testing.T) {
	srv, s := newCapServer(t, nil)
	blob := []byte("monolithic bytes")
	d := digest.FromBytes(blob)
	resp, body := do(t, "POST", srv.URL+"/v2/lib/app/blobs/uploads/?digest="+d.String(), blob,
		"Content-Type", "application/octet-stream")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("monolithic upload: %d %s", resp.StatusCode, body)
	}
	s.blobs.mu.Lock()
	got := s.blobs.writerFor
	s.blobs.signedURLs = true
	s.blobs.mu.Unlock()
	if len(got) != 1 || got[0] != d {
		t.Errorf("WriterFor calls %v; want [%s]", got, d)
	}

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(srv.URL + "/v2/lib/app/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "https://bucket.example/"+d.Encoded() {
		t.Errorf("GET: %d Location %q; want 307 to the signed URL", resp.StatusCode, resp.Header.Get("Location"))
	}
}
