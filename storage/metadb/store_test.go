package metadb

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/storage"
)

var ctx = context.Background()

func manifest(content string, subject digest.Digest) *storage.Manifest {
	d := digest.FromString(content)
	return &storage.Manifest{
		Descriptor: v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: d, Size: int64(len(content))},
		Subject:    subject,
		Content:    []byte(content),
	}
}

// TestPersistence writes through one Store and reads through a fresh one
// opened on the same file.
func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	m1, m2 := manifest("one", ""), manifest("two", digest.FromString("one"))
	blob := digest.FromString("blob")
	for _, step := range []error{
		s.PutManifest(ctx, "a/b", m1, "v1"),
		s.PutManifest(ctx, "a/b", m2, ""),
		s.PutManifest(ctx, "c", m1, "latest"),
		s.LinkBlob(ctx, "a/b", blob, 0),
		s.PutUpload(ctx, &storage.Upload{ID: "u1", Repo: "a/b", Started: time.Now(), Size: 3, State: []byte("st")}),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Repositories("", 0); len(got) != 2 || got[0] != "a/b" || got[1] != "c" {
		t.Errorf("Repositories = %v", got)
	}
	if d, err := s.Tag("a/b", "v1"); err != nil || d != m1.Descriptor.Digest {
		t.Errorf("Tag = %s, %v", d, err)
	}
	if got, err := s.Manifest("a/b", m2.Descriptor.Digest); err != nil || string(got.Content) != "two" {
		t.Errorf("Manifest = %v, %v", got, err)
	}
	if refs := s.Referrers("a/b", digest.FromString("one")); len(refs) != 1 || refs[0].Digest != m2.Descriptor.Digest {
		t.Errorf("Referrers = %v", refs)
	}
	if !s.BlobLinked("a/b", blob) || s.BlobLinked("c", blob) {
		t.Error("blob links not restored")
	}
	if u, err := s.Upload("u1"); err != nil || u.Size != 3 || string(u.State) != "st" {
		t.Errorf("Upload = %+v, %v", u, err)
	}
}

func TestDeleteManifest(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "meta.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := manifest("one", "")
	d := m.Descriptor.Digest
	_ = s.PutManifest(ctx, "a", m, "v1")
	_ = s.PutManifest(ctx, "a", m, "v2")
	_ = s.PutManifest(ctx, "b", m, "v1")
	if err := s.DeleteManifest(ctx, "a", d); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tag("a", "v2"); !errors.Is(err, storage.ErrTagUnknown) {
		t.Errorf("tag survives its manifest: %v", err)
	}
	if _, err := s.Manifest("b", d); err != nil {
		t.Errorf("manifest gone from another repository: %v", err)
	}
	if err := s.DeleteManifest(ctx, "a", d); !errors.Is(err, storage.ErrManifestUnknown) {
		t.Errorf("second delete: %v", err)
	}
	if err := s.DeleteTag(ctx, "b", "nope"); !errors.Is(err, storage.ErrTagUnknown) {
		t.Errorf("delete unknown tag: %v", err)
	}
	if _, err := s.Tags("zzz", "", 0); !errors.Is(err, storage.ErrNameUnknown) {
		t.Errorf("tags of unknown repo: %v", err)
	}
}

func TestCompleteUpload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	d := digest.FromString("x")
	if err := s.CompleteUpload(ctx, "nope", d, 0); !errors.Is(err, storage.ErrUploadUnknown) {
		t.Errorf("complete unknown upload: %v", err)
	}
	_ = s.PutUpload(ctx, &storage.Upload{ID: "u", Repo: "r"})
	if err := s.CompleteUpload(ctx, "u", d, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Upload("u"); !errors.Is(err, storage.ErrUploadUnknown) {
		t.Errorf("session survives completion: %v", err)
	}
	if !s.BlobLinked("r", d) {
		t.Error("completed blob not linked")
	}

	// The finished session is remembered across a restart, until forgotten.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	f, err := s.FinishedUpload("u")
	if err != nil || f.Repo != "r" || f.Digest != d || time.Since(f.At) > time.Minute {
		t.Fatalf("finished upload after a restart = %+v, %v; want r, %s, now", f, err, d)
	}
	if _, err := s.FinishedUpload("nope"); !errors.Is(err, storage.ErrUploadUnknown) {
		t.Errorf("finished unknown upload: %v", err)
	}
	if err := s.ForgetFinishedUploads(ctx, f.At.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinishedUpload("u"); err != nil {
		t.Errorf("forgotten before its cutoff: %v", err)
	}
	if err := s.ForgetFinishedUploads(ctx, f.At.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinishedUpload("u"); !errors.Is(err, storage.ErrUploadUnknown) {
		t.Errorf("kept past its cutoff: %v", err)
	}
}
