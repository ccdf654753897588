package api_test

import (
	"io"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/atollhq/atoll/api"
)

// TestClientRoundTrip pushes random images and an index with the
// go-containerregistry client, pulls them back and validates every layer.
func TestClientRoundTrip(t *testing.T) {
	srv := newServer(t, api.Config{})
	host := strings.TrimPrefix(srv.URL, "http://")

	var images []v1.Image
	for i, layers := range []int64{1, 3, 5} {
		img, err := random.Image(256<<10, layers)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.ParseReference(host+"/lib/random:img"+itoa(i), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
		pulled, err := remote.Image(ref)
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		if err := validate.Image(pulled); err != nil {
			t.Fatalf("validate %s: %v", ref, err)
		}
		assertSameDigest(t, img, pulled)
		images = append(images, img)
	}

	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: images[0]}, mutate.IndexAddendum{Add: images[1]}), types.OCIImageIndex)
	ref, err := name.ParseReference(host+"/lib/multi:latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("push index: %v", err)
	}
	pulled, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("pull index: %v", err)
	}
	if err := validate.Index(pulled); err != nil {
		t.Fatalf("validate index: %v", err)
	}
	// A blob streamed back must hash to its digest.
	layers, err := images[2].Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := layers[0].Digest()
	repo, err := name.NewRepository(host+"/lib/random", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	l, err := remote.Layer(repo.Digest(d.String()))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatalf("layer bytes: %v", err)
	}
}

func assertSameDigest(t *testing.T, a, b v1.Image) {
	t.Helper()
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("pulled digest %s, pushed %s", db, da)
	}
}
