// Package storagetest is the test suite every storage.BlobStore passes. A
// backend's own test only constructs the store:
//
//	func TestSuite(t *testing.T) {
//		storagetest.BlobStore(t, func(t *testing.T) storagetest.Backend { ... })
//	}
package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// Backend is a store under test and a way to see what it left behind.
type Backend struct {
	Store storage.BlobStore
	// Leftovers lists upload data still present; after the suite it must
	// be empty. Nil when the backend cannot tell.
	Leftovers func() []string
}

// BlobStore runs the suite; newBackend returns an empty store per subtest.
func BlobStore(t *testing.T, newBackend func(t *testing.T) Backend) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s storage.BlobStore)
	}{
		{"unknown", testUnknown},
		{"write and read", testWriteRead},
		{"empty blob", testEmpty},
		{"digest mismatch stores nothing", testMismatch},
		{"sha512", testSHA512},
		{"resume", testResume},
		{"resume drops unrecorded bytes", testCrashResume},
		{"cancel", testCancel},
		{"delete", testDelete},
		{"concurrent identical commits", testConcurrentCommits},
		{"walk", testWalk},
		{"walk while deleting", testWalkWhileDeleting},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			tc.fn(t, b.Store)
			if b.Leftovers != nil {
				if left := b.Leftovers(); len(left) > 0 {
					t.Errorf("upload data left behind: %v", left)
				}
			}
		})
	}
}

var ctx = context.Background()

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// put writes b as one upload and commits it under d.
func put(t *testing.T, s storage.BlobStore, id string, b []byte, d digest.Digest) error {
	t.Helper()
	w, err := s.Writer(ctx, id, nil)
	if err != nil {
		t.Fatalf("Writer: %v", err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return w.Commit(ctx, d)
}

func readAll(t *testing.T, s storage.BlobStore, d digest.Digest) []byte {
	t.Helper()
	b, err := s.Open(ctx, d)
	if err != nil {
		t.Fatalf("Open %s: %v", d, err)
	}
	defer b.Close()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatalf("read %s: %v", d, err)
	}
	if int64(len(got)) != b.Size() {
		t.Errorf("Size() = %d, read %d bytes", b.Size(), len(got))
	}
	return got
}

func testUnknown(t *testing.T, s storage.BlobStore) {
	d := digest.FromString("absent")
	if _, err := s.Stat(ctx, d); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Errorf("Stat: %v, want ErrBlobUnknown", err)
	}
	if _, err := s.Open(ctx, d); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Errorf("Open: %v, want ErrBlobUnknown", err)
	}
	if err := s.Delete(ctx, d); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Errorf("Delete: %v, want ErrBlobUnknown", err)
	}
}

func testWriteRead(t *testing.T, s storage.BlobStore) {
	b := randomBytes(t, 3<<20+17)
	d := digest.FromBytes(b)
	if err := put(t, s, "u1", b, d); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if size, err := s.Stat(ctx, d); err != nil || size != int64(len(b)) {
		t.Fatalf("Stat = %d, %v", size, err)
	}
	if !bytes.Equal(readAll(t, s, d), b) {
		t.Fatal("content differs")
	}
	r, err := s.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Seek(1000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 100)
	if _, err := io.ReadFull(r, part); err != nil || !bytes.Equal(part, b[1000:1100]) {
		t.Fatalf("ranged read: %v", err)
	}
}

func testEmpty(t *testing.T, s storage.BlobStore) {
	d := digest.FromBytes(nil)
	if err := put(t, s, "u1", nil, d); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got := readAll(t, s, d); len(got) != 0 {
		t.Fatalf("empty blob read %d bytes", len(got))
	}
}

func testMismatch(t *testing.T, s storage.BlobStore) {
	wrong := digest.FromString("something else")
	if err := put(t, s, "u1", []byte("content"), wrong); !errors.Is(err, storage.ErrDigestMismatch) {
		t.Fatalf("Commit: %v, want ErrDigestMismatch", err)
	}
	if _, err := s.Stat(ctx, wrong); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Errorf("blob stored despite mismatch: %v", err)
	}
	if _, err := s.Stat(ctx, digest.FromString("content")); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Errorf("content stored under its real digest: %v", err)
	}
}

func testSHA512(t *testing.T, s storage.BlobStore) {
	b := randomBytes(t, 100<<10)
	d := digest.SHA512.FromBytes(b)
	if err := put(t, s, "u1", b, d); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if !bytes.Equal(readAll(t, s, d), b) {
		t.Fatal("content differs")
	}
}

func testResume(t *testing.T, s storage.BlobStore) {
	b := randomBytes(t, 1<<20)
	var state []byte
	for i := 0; i < 4; i++ {
		w, err := s.Writer(ctx, "u1", state)
		if err != nil {
			t.Fatalf("Writer #%d: %v", i, err)
		}
		if w.Size() != int64(i*len(b)/4) {
			t.Fatalf("resumed at %d, want %d", w.Size(), i*len(b)/4)
		}
		if _, err := w.Write(b[i*len(b)/4 : (i+1)*len(b)/4]); err != nil {
			t.Fatal(err)
		}
		if state, err = w.State(); err != nil {
			t.Fatal(err)
		}
		if i < 3 {
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := w.Commit(ctx, digest.FromBytes(b)); err != nil {
			t.Fatalf("Commit: %v", err)
		}
	}
	if !bytes.Equal(readAll(t, s, digest.FromBytes(b)), b) {
		t.Fatal("content differs")
	}
}

// testCrashResume writes past the last recorded state, as a process killed
// before recording would, and resumes from the recorded state.
func testCrashResume(t *testing.T, s storage.BlobStore) {
	w, err := s.Writer(ctx, "u1", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("recorded "))
	state, err := w.State()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("lost in the crash"))
	_ = w.Close()
	w, err = s.Writer(ctx, "u1", state)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("and resumed"))
	want := []byte("recorded and resumed")
	if err := w.Commit(ctx, digest.FromBytes(want)); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got := readAll(t, s, digest.FromBytes(want)); !bytes.Equal(got, want) {
		t.Fatalf("got %q", got)
	}
}

func testCancel(t *testing.T, s storage.BlobStore) {
	w, err := s.Writer(ctx, "u1", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("abandoned"))
	state, err := w.State()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Cancel(ctx); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if _, err := s.Writer(ctx, "u1", state); !errors.Is(err, storage.ErrUploadUnknown) {
		t.Errorf("resume after cancel: %v, want ErrUploadUnknown", err)
	}
}

func testDelete(t *testing.T, s storage.BlobStore) {
	d := digest.FromString("to delete")
	if err := put(t, s, "u1", []byte("to delete"), d); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, d); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Stat(ctx, d); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Errorf("Stat after delete: %v", err)
	}
}

func testConcurrentCommits(t *testing.T, s storage.BlobStore) {
	b := randomBytes(t, 512<<10)
	d := digest.FromBytes(b)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		w, err := s.Writer(ctx, "u"+string(rune('a'+i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := w.Write(b); err != nil {
				errs[i] = err
				return
			}
			errs[i] = w.Commit(ctx, d)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	if !bytes.Equal(readAll(t, s, d), b) {
		t.Fatal("content differs")
	}
}

func testWalk(t *testing.T, s storage.BlobStore) {
	walker, ok := s.(storage.BlobWalker)
	if !ok {
		t.Skip("store cannot walk its blobs")
	}
	want := map[digest.Digest]int64{}
	for _, c := range []string{"a", "bb", "ccc"} {
		d := digest.FromString(c)
		if err := put(t, s, "u-"+c, []byte(c), d); err != nil {
			t.Fatal(err)
		}
		want[d] = int64(len(c))
	}
	got := map[digest.Digest]int64{}
	if err := walker.Walk(ctx, func(d digest.Digest, size int64) error { got[d] = size; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("walked %v, want %v", got, want)
	}
	for d, size := range want {
		if got[d] != size {
			t.Errorf("walk %s: size %d, want %d", d, got[d], size)
		}
	}
	if u, ok := s.(storage.UsageReporter); ok {
		// A second commit of the same content and a delete keep the count.
		_ = put(t, s, "again", []byte("a"), digest.FromString("a"))
		_ = s.Delete(ctx, digest.FromString("bb"))
		if blobs, bytes := u.Usage(); blobs != 2 || bytes != 4 {
			t.Errorf("Usage() = %d blobs, %d bytes; want 2, 4", blobs, bytes)
		}
	}
}

// testWalkWhileDeleting deletes blobs a walk has not visited yet, as a
// collection or a rebalance does meanwhile: the walk goes on.
func testWalkWhileDeleting(t *testing.T, s storage.BlobStore) {
	walker, ok := s.(storage.BlobWalker)
	if !ok {
		t.Skip("store cannot walk its blobs")
	}
	// Blobs sharing a directory, so that one is deleted after the walk
	// listed it and before it visits it.
	var ds []digest.Digest
	byPrefix := map[string][]digest.Digest{}
	for i := 0; len(ds) == 0; i++ {
		b := []byte(fmt.Sprintf("blob %d", i))
		d := digest.FromBytes(b)
		if err := put(t, s, fmt.Sprintf("u-%d", i), b, d); err != nil {
			t.Fatal(err)
		}
		p := d.Encoded()[:2]
		if byPrefix[p] = append(byPrefix[p], d); len(byPrefix[p]) == 3 {
			ds = byPrefix[p]
		}
	}
	deleted := false
	err := walker.Walk(ctx, func(d digest.Digest, _ int64) error {
		if !deleted && slices.Contains(ds, d) {
			deleted = true
			for _, o := range ds {
				if o != d {
					if err := s.Delete(ctx, o); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk with blobs deleted meanwhile: %v", err)
	}
}
