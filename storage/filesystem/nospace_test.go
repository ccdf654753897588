package filesystem

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/diskspace"
	"github.com/atollhq/atoll/storage/diskspace/diskspacetest"
)

// TestWriteNoSpace fills a small disk with an upload: the write (or the
// State or Commit after it, since bytes are stored behind Write) fails with
// storage.ErrNoSpace, the bytes since the last durable state are gone at
// once, and the upload resumes from that state when retried.
func TestWriteNoSpace(t *testing.T) {
	dir := diskspacetest.Tmpfs(t, 8<<20)
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	used := func() uint64 {
		t.Helper()
		sp, err := diskspace.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		return sp.Total - sp.Free
	}
	big := make([]byte, 16<<20)
	_, _ = rand.Read(big)

	t.Run("new upload", func(t *testing.T) {
		before := used()
		w, err := s.Writer(ctx, "fresh", nil)
		if err != nil {
			t.Fatal(err)
		}
		// The bytes are stored behind Write: the failure comes from
		// Write or, at the latest, from State.
		if _, err = io.Copy(w, bytes.NewReader(big)); err != nil && !errors.Is(err, storage.ErrNoSpace) {
			t.Fatalf("write of 16 MiB on an 8 MiB disk: %v, want nil or ErrNoSpace", err)
		}
		if _, err := w.State(); !errors.Is(err, storage.ErrNoSpace) {
			t.Errorf("State after writing 16 MiB on an 8 MiB disk: %v, want ErrNoSpace", err)
		}
		if after := used(); after != before {
			t.Errorf("disk use %d bytes before the upload, %d after it failed", before, after)
		}
		if err := w.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(dir + "/uploads/fresh"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("upload file after the failure: %v, want it gone", err)
		}
		// A retry starts afresh and succeeds with what fits.
		small := big[:1<<20]
		if err := put(ctx, s, "fresh", nil, small); err != nil {
			t.Fatalf("retry: %v", err)
		}
	})

	t.Run("resumed upload", func(t *testing.T) {
		first, rest := big[:1<<20], big[1<<20:2<<20]
		w, err := s.Writer(ctx, "resumed", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(first); err != nil {
			t.Fatal(err)
		}
		state, err := w.State()
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		durable := used()
		w, err = s.Writer(ctx, "resumed", state)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(w, bytes.NewReader(big)); err != nil && !errors.Is(err, storage.ErrNoSpace) {
			t.Fatalf("write past the disk: %v, want nil or ErrNoSpace", err)
		}
		if err := w.Commit(ctx, digest.FromBytes(first)); !errors.Is(err, storage.ErrNoSpace) {
			t.Errorf("Commit after the failure: %v, want ErrNoSpace", err)
		}
		if after := used(); after != durable {
			t.Errorf("disk use %d bytes at the durable state, %d after the failed chunk", durable, after)
		}
		fi, err := os.Stat(dir + "/uploads/resumed")
		if err != nil || fi.Size() != int64(len(first)) {
			t.Fatalf("upload file after the failure: %v, size %d, want %d", err, fi.Size(), len(first))
		}
		// The retried chunk lands after the durable bytes.
		want := append(append([]byte(nil), first...), rest...)
		if err := put(ctx, s, "resumed", state, rest, want); err != nil {
			t.Fatalf("resume: %v", err)
		}
	})
}

// put appends data to upload id from state and commits it as the digest
// of whole (data when whole is not given), then reads the blob back.
func put(ctx context.Context, s *Store, id string, state []byte, data []byte, whole ...[]byte) error {
	content := data
	if len(whole) > 0 {
		content = whole[0]
	}
	w, err := s.Writer(ctx, id, state)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		_ = w.Close()
		return err
	}
	d := digest.FromBytes(content)
	if err := w.Commit(ctx, d); err != nil {
		return err
	}
	b, err := s.Open(ctx, d)
	if err != nil {
		return err
	}
	defer b.Close()
	got, err := io.ReadAll(b)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, content) {
		return errors.New("blob read back differs")
	}
	return s.Delete(ctx, d)
}
