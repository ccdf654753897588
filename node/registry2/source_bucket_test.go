package registry2

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeBucket is a bucket holding a registry:2 tree under its root, and the
// store in it: blobs adopted by "server-side copy", records.
type fakeBucket struct {
	*fakeStore
	mu      sync.Mutex
	objects map[string][]byte // key relative to the root
	copies  int
}

// bucketOf copies the files of dir into a fake bucket, as registry:2's S3
// driver would have written them (no directories: an empty one is lost).
func bucketOf(t *testing.T, dir string) *fakeBucket {
	b := &fakeBucket{fakeStore: newFake(), objects: map[string][]byte{}}
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		content, err := os.ReadFile(path)
		b.objects[filepath.ToSlash(rel)] = content
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *fakeBucket) WalkKeys(_ context.Context, prefix string, fn func(string, int64) error) error {
	b.mu.Lock()
	var keys []string
	for k := range b.objects {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	b.mu.Unlock()
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn(k, int64(len(b.objects[k]))); err != nil {
			return err
		}
	}
	return nil
}

func (b *fakeBucket) StatKey(_ context.Context, key string) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objects[key]
	if !ok {
		return 0, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	return int64(len(o)), nil
}

func (b *fakeBucket) OpenKey(_ context.Context, key string) (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objects[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(o)), nil
}

func (b *fakeBucket) AdoptObject(_ context.Context, d digest.Digest, key string, _ int64) error {
	b.mu.Lock()
	b.copies++
	b.mu.Unlock()
	return b.Adopt(d, key)
}

func (b *fakeBucket) PutRecord(_ context.Context, name string, content []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.objects["records/"+name] = content
	return nil
}

func (b *fakeBucket) Record(ctx context.Context, name string) ([]byte, error) {
	r, err := b.OpenKey(ctx, "records/"+name)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// TestImportBucket imports the same kind of tree from a bucket: blobs by
// server-side copy (none through the writer), the record kept in the
// bucket, a deleted revision (no key left) not imported, and a second
// store on the same bucket finding the import done.
func TestImportBucket(t *testing.T) {
	tr := tree{t, t.TempDir()}
	layer, config := tr.blob([]byte("layer")), tr.blob([]byte("{}"))
	kept := tr.blob([]byte(`{"schemaVersion":2,"mediaType":"` + v1.MediaTypeImageManifest + `","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		config.String() + `","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + layer.String() + `","size":5}]}`))
	deleted := tr.blob([]byte(`{"schemaVersion":2,"mediaType":"` + v1.MediaTypeImageManifest + `","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		config.String() + `","size":2},"layers":[]}`))
	repo := "repositories/library/app/"
	tr.link(repo+"_manifests/revisions/sha256/"+kept.Encoded()+"/link", kept)
	tr.link(repo+"_manifests/tags/latest/current/link", kept)
	tr.link(repo+"_manifests/tags/old/current/link", deleted) // its revision link is gone
	tr.link(repo+"_layers/sha256/"+layer.Encoded()+"/link", layer)
	tr.link("repositories/library/gone/_layers/sha256/"+layer.Encoded()+"/link", layer) // manifests deleted
	tr.write(repo+"_uploads/u1/data", []byte("partial"))

	b := bucketOf(t, tr.root)
	src := BucketSource(b, "s3://bucket/root")
	ctx := context.Background()
	if !Detect(ctx, src) || Detect(ctx, BucketSource(&fakeBucket{objects: map[string][]byte{}}, "empty")) {
		t.Fatal("Detect")
	}
	rec := StoreRecord(b, "registry2-import.json")
	rep, err := Run(ctx, src, Deps{Blobs: b, Meta: b}, Options{Record: rec})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blobs != 4 || rep.ServerCopied != 4 || b.copies != 4 || rep.Copied != 0 || rep.Linked != 0 ||
		rep.Manifests != 1 || rep.Tags != 1 || rep.DeadTags != 1 || rep.Layers != 2 || rep.Uploads != 1 || rep.Repositories != 2 {
		t.Errorf("report: %+v (copies %d)", rep, b.copies)
	}
	if b.tags["library/app:latest"] != kept || b.manifests["library/app@"+deleted.String()] || !b.links["library/gone@"+layer.String()] {
		t.Errorf("metadata: tags %v, manifests %v, links %v", b.tags, b.manifests, b.links)
	}
	if _, ok := b.objects["records/registry2-import.json"]; !ok {
		t.Error("the finished import is not recorded in the bucket")
	}
	// Another member on the same bucket, with its own empty store.
	other := &fakeBucket{fakeStore: newFake(), objects: b.objects}
	again, err := Run(ctx, BucketSource(other, "s3://bucket/root"), Deps{Blobs: other, Meta: other}, Options{Record: StoreRecord(other, "registry2-import.json")})
	if err != nil || !again.AlreadyDone || len(other.manifests) != 0 {
		t.Errorf("a second store on the bucket imported again: %+v, %v", again, err)
	}
	// A store that is not the bucket's copies through its writer: the fake
	// has none, so the import fails rather than copy inside a bucket that
	// is not the store's.
	if _, err := Run(ctx, src, Deps{Blobs: newFake(), Meta: newFake()}, Options{}); err == nil {
		t.Error("blobs adopted into a store that is not the bucket's")
	}
}
