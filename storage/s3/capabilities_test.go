package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
	miniotest "github.com/atollhq/atoll/test/minio"
)

// TestMultipartCommit covers the commits of blobs that span parts, which
// the shared suite's small blobs do not reach.
func TestMultipartCommit(t *testing.T) {
	srv := miniotest.Start(t)
	ctx := context.Background()
	data, _ := io.ReadAll(newPattern(3*minPartSize + 12345))
	for _, tc := range []struct {
		name   string
		size   int
		digest func([]byte) digest.Digest
		err    error
	}{
		{"exactly one part", minPartSize, digest.FromBytes, nil},
		{"one part and a byte", minPartSize + 1, digest.FromBytes, nil},
		{"two parts", 2 * minPartSize, digest.FromBytes, nil},
		{"sha512", len(data), digest.SHA512.FromBytes, nil},
		{"mismatch", len(data), func([]byte) digest.Digest { return digest.FromString("other") }, storage.ErrDigestMismatch},
		{"sha512 mismatch", len(data), func([]byte) digest.Digest { return digest.SHA512.FromString("other") }, storage.ErrDigestMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, srv, func(c *Config) { c.PartSize = minPartSize })
			b := data[:tc.size]
			d := tc.digest(b)
			for i := range 2 { // the second commit finds the blob there
				w, err := s.Writer(ctx, "u", nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write(b); err != nil {
					t.Fatal(err)
				}
				if err := w.Commit(ctx, d); !errors.Is(err, tc.err) {
					t.Fatalf("Commit #%d: %v, want %v", i, err, tc.err)
				}
			}
			if left := leftovers(t, s, "u"); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
			blobs, size := s.Usage()
			if tc.err != nil {
				if _, err := s.Stat(ctx, d); !errors.Is(err, storage.ErrBlobUnknown) || blobs != 0 {
					t.Errorf("mismatch stored a blob: %v, %d blobs", err, blobs)
				}
				return
			}
			if blobs != 1 || size != int64(len(b)) {
				t.Errorf("Usage() = %d, %d; want 1 blob of %d bytes", blobs, size, len(b))
			}
			if got := readBlob(t, s, d); !bytes.Equal(got, b) {
				t.Error("content differs")
			}
		})
	}
}

// TestCancelMultipart cancels an upload that has parts and a tail.
func TestCancelMultipart(t *testing.T) {
	srv := miniotest.Start(t)
	s := newStore(t, srv, func(c *Config) { c.PartSize = minPartSize })
	ctx := context.Background()
	w, err := s.Writer(ctx, "u", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(bytes.Repeat([]byte("c"), 2*minPartSize+7))
	state, err := w.State()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Cancel(ctx); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if left := leftovers(t, s, "u"); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if _, err := s.Writer(ctx, "u", state); !errors.Is(err, storage.ErrUploadUnknown) {
		t.Errorf("resume after cancel: %v, want ErrUploadUnknown", err)
	}
}

func TestPurgeUploads(t *testing.T) {
	srv := miniotest.Start(t)
	s := newStore(t, srv, func(c *Config) { c.PartSize = minPartSize })
	ctx := context.Background()
	data := bytes.Repeat([]byte("x"), 6<<20)
	for _, id := range []string{"kept", "orphan-small", "orphan-big"} {
		w, err := s.Writer(ctx, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(data[:10])
		if id != "orphan-small" {
			_, _ = w.Write(data) // a multipart upload and a tail
		}
		if _, err := w.State(); err != nil {
			t.Fatal(err)
		}
		_ = w.Close()
	}
	if left := leftovers(t, s); len(left) != 7 {
		t.Fatalf("before purge: %v, want 3 tails, 2 markers and 2 multipart uploads", left)
	}
	if err := s.PurgeUploads(ctx, time.Now().Add(-time.Hour), func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, s); len(left) != 7 {
		t.Fatalf("purge removed uploads newer than the cutoff: %v", left)
	}
	err := s.PurgeUploads(ctx, time.Now().Add(time.Minute), func(id string) bool { return id == "kept" })
	if err != nil {
		t.Fatal(err)
	}
	left := leftovers(t, s)
	if len(left) != 3 {
		t.Errorf("after purge: %v, want the kept upload's tail, marker and multipart upload", left)
	}
	for _, key := range left {
		if !strings.Contains(key, "/uploads/kept/") {
			t.Errorf("purge left %s", key)
		}
	}
}

// TestCancelAfterCrash cancels, with a writer started afresh, an upload
// whose first writer sent parts and died before recording a State (a
// session whose first PATCH a crash cut off): nothing of either stays.
func TestCancelAfterCrash(t *testing.T) {
	srv := miniotest.Start(t)
	s := newStore(t, srv, func(c *Config) { c.PartSize = minPartSize })
	ctx := context.Background()
	w, err := s.Writer(ctx, "cut", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(bytes.Repeat([]byte("x"), 2*minPartSize+1)) // one part sent, one in flight
	_ = w.Close()
	if left := leftovers(t, s, "cut"); len(left) == 0 {
		t.Fatal("the cut-off writer left nothing to cancel")
	}
	w, err = s.Writer(ctx, "cut", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, s, "cut"); len(left) > 0 {
		t.Errorf("after cancel: %v", left)
	}
}

func TestURLFor(t *testing.T) {
	srv := miniotest.Start(t)
	s := newStore(t, srv, func(c *Config) { c.Redirect = true })
	ctx := context.Background()
	d := digest.FromString("redirected")
	put(t, s, d, []byte("redirected"))
	u, err := s.URLFor(ctx, d, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "redirected" {
		t.Fatalf("GET presigned URL: %s %q", resp.Status, got)
	}

	plain := newStore(t, srv, nil)
	if _, err := plain.URLFor(ctx, d, time.Minute); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("URLFor without redirect: %v, want ErrUnsupported", err)
	}
}

// TestUsageCountedAtNew reopens a store and finds the blobs it held.
func TestUsageCountedAtNew(t *testing.T) {
	srv := miniotest.Start(t)
	s := newStore(t, srv, nil)
	put(t, s, digest.FromString("one"), []byte("one"))
	put(t, s, digest.FromString("three"), []byte("three"))
	again := newStore(t, srv, func(c *Config) { c.RootDirectory = s.cfg.RootDirectory })
	if blobs, bytes := again.Usage(); blobs != 2 || bytes != 8 {
		t.Errorf("Usage() = %d, %d; want 2 blobs, 8 bytes", blobs, bytes)
	}
	if err := again.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
}
