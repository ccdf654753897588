package registry2

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/storage"
)

// fakeStore is an in-memory atoll: blobs adopted by path, metadata calls.
type fakeStore struct {
	mu        sync.Mutex
	blobs     map[digest.Digest]string // digest -> adopted path ("copy" when copied)
	manifests map[string]bool          // repo@digest
	tags      map[string]digest.Digest // repo:tag
	links     map[string]bool          // repo@digest
}

func newFake() *fakeStore {
	return &fakeStore{blobs: map[digest.Digest]string{}, manifests: map[string]bool{}, tags: map[string]digest.Digest{}, links: map[string]bool{}}
}

func (f *fakeStore) Stat(_ context.Context, d digest.Digest) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.blobs[d]; !ok {
		return 0, storage.ErrBlobUnknown
	}
	return 0, nil
}

func (f *fakeStore) Writer(context.Context, string, []byte) (storage.BlobWriter, error) {
	return nil, errors.New("fake: no writer")
}

func (f *fakeStore) Adopt(d digest.Digest, path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blobs[d] = path
	return nil
}

func (f *fakeStore) PutManifest(_ context.Context, repo string, m *storage.Manifest, tag string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.manifests[repo+"@"+m.Descriptor.Digest.String()] = true
	if tag != "" {
		f.tags[repo+":"+tag] = m.Descriptor.Digest
	}
	return nil
}

func (f *fakeStore) LinkBlob(_ context.Context, repo string, d digest.Digest, _ int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.links[repo+"@"+d.String()] = true
	return nil
}

// tree writes a registry:2 directory by hand.
type tree struct {
	t    *testing.T
	root string
}

func (tr tree) write(rel string, content []byte) {
	p := filepath.Join(tr.root, v2Root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tr.t.Fatal(err)
	}
	if err := os.WriteFile(p, content, 0o644); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr tree) blob(content []byte) digest.Digest {
	d := digest.FromBytes(content)
	tr.write("blobs/sha256/"+d.Encoded()[:2]+"/"+d.Encoded()+"/data", content)
	return d
}

func (tr tree) link(rel string, d digest.Digest) { tr.write(rel, []byte(d.String())) }

func TestImport(t *testing.T) {
	tr := tree{t, t.TempDir()}
	layer, config := tr.blob([]byte("layer")), tr.blob([]byte("{}"))
	manifest := func(layer digest.Digest) []byte {
		return []byte(`{"schemaVersion":2,"mediaType":"` + v1.MediaTypeImageManifest + `","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
			config.String() + `","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + layer.String() + `","size":5}]}`)
	}
	kept := tr.blob(manifest(layer))
	deleted := tr.blob(manifest(tr.blob([]byte("other layer"))))
	corrupt := digest.FromString("not what the file holds")
	tr.write("blobs/sha256/"+corrupt.Encoded()[:2]+"/"+corrupt.Encoded()+"/data", []byte("tampered"))

	repo := "repositories/team/app/"
	tr.link(repo+"_manifests/revisions/sha256/"+kept.Encoded()+"/link", kept)
	tr.write(repo+"_manifests/revisions/sha256/"+deleted.Encoded()+"/.keep", nil) // registry:2 removed the link
	tr.link(repo+"_manifests/tags/v1/current/link", kept)
	tr.link(repo+"_manifests/tags/old/current/link", deleted)
	tr.link(repo+"_layers/sha256/"+layer.Encoded()+"/link", layer)
	tr.link(repo+"_layers/sha256/"+config.Encoded()+"/link", config)
	tr.write(repo+"_uploads/0c1e/startedat", []byte("2024-01-01T00:00:00Z"))

	ctx := context.Background()
	src := DirSource(tr.root)
	if !Detect(ctx, src) || Detect(ctx, DirSource(t.TempDir())) {
		t.Fatal("Detect")
	}
	rec := FileRecord(filepath.Join(t.TempDir(), "done.json"))
	f := newFake()
	deps := Deps{Blobs: f, Meta: f}

	dry, err := Run(ctx, src, deps, Options{DryRun: true, Record: rec})
	if err != nil {
		t.Fatal(err)
	}
	if done, _ := Done(ctx, rec, src); len(f.blobs)+len(f.manifests)+len(f.links) != 0 || done {
		t.Fatalf("dry run wrote: %d blobs, %d manifests, %d links", len(f.blobs), len(f.manifests), len(f.links))
	}
	rep, err := Run(ctx, src, deps, Options{Record: rec, ProgressEvery: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []Report{dry, rep} {
		if r.Blobs != 6 || r.Linked != 5 || r.Corrupt != 1 || r.Manifests != 1 || r.Deleted != 1 ||
			r.Tags != 1 || r.DeadTags != 1 || r.Layers != 2 || r.Uploads != 1 || r.Repositories != 1 {
			t.Errorf("report (dry run %v): %+v", r.DryRun, r)
		}
	}
	if _, ok := f.blobs[corrupt]; ok {
		t.Error("a blob whose content does not match its digest was adopted")
	}
	if f.tags["team/app:v1"] != kept || f.tags["team/app:old"] != "" || !f.manifests["team/app@"+kept.String()] || f.manifests["team/app@"+deleted.String()] {
		t.Errorf("metadata: tags %v, manifests %v", f.tags, f.manifests)
	}
	if !f.links["team/app@"+layer.String()] || !f.links["team/app@"+config.String()] {
		t.Errorf("layer links %v", f.links)
	}
	if done, err := Done(ctx, rec, src); !done || err != nil {
		t.Errorf("finished import not recorded: %v", err)
	}
	again, err := Run(ctx, src, deps, Options{Record: rec})
	if err != nil || !again.AlreadyDone {
		t.Errorf("second run: %+v, %v; want already done", again, err)
	}

	// Interrupted (no record): the next run skips the blobs held.
	resumed, err := Run(ctx, src, deps, Options{})
	if err != nil || resumed.Held != 5 || resumed.Linked != 0 {
		t.Errorf("resumed run: %+v, %v; want the 5 blobs held already", resumed, err)
	}
}

func TestProgressLine(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(4, 4000)
	p.add(1000)
	p.log(newTextLogger(&buf), "importing")
	for _, want := range []string{"blobs=1", "of=4", "bytes=1000", "ofBytes=4000", "left="} {
		if !bytes.Contains(buf.Bytes(), []byte(want)) {
			t.Errorf("progress line %q lacks %s", buf.String(), want)
		}
	}
}

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
