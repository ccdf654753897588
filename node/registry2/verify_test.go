package registry2

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// verifyStore is the fake store with what Verify uses: blobs read from the
// adopted files, deletes, and the repositories linking a blob.
type verifyStore struct {
	*fakeStore
	opened func() // called on each Open
}

type fileBlob struct {
	*os.File
	size int64
}

func (b fileBlob) Size() int64        { return b.size }
func (b fileBlob) ModTime() time.Time { return time.Time{} }

func (v verifyStore) Open(_ context.Context, d digest.Digest) (storage.Blob, error) {
	v.mu.Lock()
	path, ok := v.blobs[d]
	v.mu.Unlock()
	if !ok {
		return nil, storage.ErrBlobUnknown
	}
	if v.opened != nil {
		v.opened()
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, _ := f.Stat()
	return fileBlob{f, fi.Size()}, nil
}

func (v verifyStore) Delete(_ context.Context, d digest.Digest) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.blobs[d]; !ok {
		return storage.ErrBlobUnknown
	}
	delete(v.blobs, d)
	return nil
}

func (v verifyStore) BlobRepos(d digest.Digest) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for k := range v.links {
		if repo, ld, _ := strings.Cut(k, "@"); ld == d.String() {
			out = append(out, repo)
		}
	}
	return out
}

func (v verifyStore) UnlinkEverywhere(_ context.Context, ds []digest.Digest) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	for k := range v.links {
		for _, d := range ds {
			if strings.HasSuffix(k, "@"+d.String()) {
				delete(v.links, k)
			}
		}
	}
	return nil
}

// TestLazyVerification imports with NoVerify a tree holding a layer whose
// content does not match its digest: it is adopted, then the background
// verification, cut off after its first blob and run again, finds it,
// unlinks it from the repository, deletes it, and names both in a warning;
// the good blobs stay.
func TestLazyVerification(t *testing.T) {
	tr := tree{t, t.TempDir()}
	good, config := tr.blob([]byte("good layer")), tr.blob([]byte("{}"))
	bad := digest.FromString("the layer as pushed")
	tr.write("blobs/sha256/"+bad.Encoded()[:2]+"/"+bad.Encoded()+"/data", []byte("the layer after bit rot"))
	m := tr.blob([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		config.String() + `","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + good.String() +
		`","size":10},{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + bad.String() + `","size":19}]}`))
	repo := "repositories/team/app/"
	tr.link(repo+"_manifests/revisions/sha256/"+m.Encoded()+"/link", m)
	tr.link(repo+"_manifests/tags/v1/current/link", m)
	for _, d := range []digest.Digest{good, config, bad} {
		tr.link(repo+"_layers/sha256/"+d.Encoded()+"/link", d)
	}

	ctx := context.Background()
	f := verifyStore{fakeStore: newFake()}
	state := FileRecord(filepath.Join(t.TempDir(), "verify.json"))
	rep, err := Run(ctx, DirSource(tr.root), Deps{Blobs: f, Meta: f}, Options{NoVerify: true, Unverified: state})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Corrupt != 0 || rep.Linked != 4 || rep.Unverified != 4 || rep.Layers != 3 || !f.links["team/app@"+bad.String()] {
		t.Fatalf("import without hashing: %+v", rep)
	}
	if !VerifyPending(ctx, state) {
		t.Fatal("no verification pending after an import without hashing")
	}

	// Cut off after the first blob: it goes on from there.
	cut, cancel := context.WithCancel(ctx)
	f.opened = cancel
	first, err := Verify(cut, state, VerifyDeps{Blobs: f, Meta: f})
	if !errors.Is(err, context.Canceled) || first.Verified+first.Corrupt != 1 {
		t.Fatalf("cut-off verification: %+v, %v", first, err)
	}
	f.opened = nil
	var log bytes.Buffer
	rest, err := Verify(ctx, state, VerifyDeps{Blobs: f, Meta: f, Logger: newTextLogger(&log)})
	if err != nil {
		t.Fatal(err)
	}
	if first.Corrupt+rest.Corrupt != 1 || first.Verified+rest.Verified != 3 || rest.Verified+rest.Corrupt != 3 {
		t.Errorf("verification: first %+v, then %+v; want 3 verified and 1 corrupt in all, the second run doing 3", first, rest)
	}
	if _, held := f.blobs[bad]; held || f.links["team/app@"+bad.String()] {
		t.Error("the corrupt blob is still held or linked")
	}
	if _, held := f.blobs[good]; !held || !f.links["team/app@"+good.String()] {
		t.Error("a good blob was dropped")
	}
	if w := log.String(); !strings.Contains(w, "level=WARN") || !strings.Contains(w, bad.String()) || !strings.Contains(w, "team/app") {
		t.Errorf("no warning naming the blob and its repository: %s", w)
	}
	if VerifyPending(ctx, state) {
		t.Error("verification still pending once done")
	}
	if again, err := Verify(ctx, state, VerifyDeps{Blobs: f, Meta: f}); err != nil || again.Verified+again.Corrupt != 0 {
		t.Errorf("verification ran again: %+v, %v", again, err)
	}
}
