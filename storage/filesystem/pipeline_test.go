package filesystem

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"testing"
	"testing/iotest"

	"github.com/opencontainers/go-digest"
)

// TestUploadPieces writes uploads in pieces that cross block and chunk
// boundaries, through Write and ReadFrom, with States between them (on
// the same writer and on a resumed one): the upload file never shows the
// padding of its last block, and the blob is the bytes written.
func TestUploadPieces(t *testing.T) {
	ctx := context.Background()
	data := make([]byte, 3*chunkSize+2*align+123)
	_, _ = rand.Read(data)
	for _, tc := range []struct {
		name string
		// cuts are where a State is taken; resume says each State is
		// followed by a new Writer from it.
		cuts     []int
		resume   bool
		readFrom bool
	}{
		{name: "one write", cuts: nil},
		{name: "states on one writer", cuts: []int{1, align - 1, align + 1, chunkSize - 7, chunkSize, chunkSize + 1, 2*chunkSize + align + 5}},
		{name: "resumed at odd offsets", cuts: []int{9, align, 3 * align / 2, chunkSize + 17, 3 * chunkSize}, resume: true},
		{name: "read from, resumed", cuts: []int{100, chunkSize + align - 1}, resume: true, readFrom: true},
		{name: "read from, one writer", cuts: []int{5, 2*chunkSize + 1}, readFrom: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			w, err := s.Writer(ctx, "u", nil)
			if err != nil {
				t.Fatal(err)
			}
			from := 0
			for _, cut := range append(tc.cuts, len(data)) {
				piece := data[from:cut]
				if tc.readFrom {
					// One byte a Read at first, to land at odd places in a chunk.
					r := io.MultiReader(iotest.OneByteReader(bytes.NewReader(piece[:min(3, len(piece))])), bytes.NewReader(piece[min(3, len(piece)):]))
					if n, err := w.(io.ReaderFrom).ReadFrom(r); err != nil || n != int64(len(piece)) {
						t.Fatalf("ReadFrom at %d: %d, %v", from, n, err)
					}
				} else if _, err := w.Write(piece); err != nil {
					t.Fatalf("Write at %d: %v", from, err)
				}
				from = cut
				if cut == len(data) {
					break
				}
				state, err := w.State()
				if err != nil {
					t.Fatalf("State at %d: %v", cut, err)
				}
				fi, err := os.Stat(s.blobsDir() + "/../uploads/u")
				if err != nil || fi.Size() != int64(cut) {
					t.Fatalf("upload file after State at %d: size %d, %v", cut, fi.Size(), err)
				}
				if tc.resume {
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
					if w, err = s.Writer(ctx, "u", state); err != nil {
						t.Fatalf("resume at %d: %v", cut, err)
					}
				}
			}
			d := digest.FromBytes(data)
			if err := w.Commit(ctx, d); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			b, err := s.Open(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			got, err := io.ReadAll(b)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("blob read back: %d bytes, %v; differs", len(got), err)
			}
		})
	}
}

// TestReadFromBodyError: a failing reader's error comes back from ReadFrom
// as it is, so the API can tell the client's fault from the disk's, and
// the bytes before it are kept up to the last State.
func TestReadFromBodyError(t *testing.T) {
	ctx := context.Background()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Writer(ctx, "u", nil)
	if err != nil {
		t.Fatal(err)
	}
	head := bytes.Repeat([]byte("a"), align+3)
	if _, err := w.Write(head); err != nil {
		t.Fatal(err)
	}
	state, err := w.State()
	if err != nil {
		t.Fatal(err)
	}
	cut := errors.New("client went away")
	r := io.MultiReader(bytes.NewReader(make([]byte, chunkSize+5)), iotest.ErrReader(cut))
	if _, err := w.(io.ReaderFrom).ReadFrom(r); !errors.Is(err, cut) {
		t.Fatalf("ReadFrom: %v, want the reader's error", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w, err = s.Writer(ctx, "u", state)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("tail")); err != nil {
		t.Fatal(err)
	}
	want := append(head, "tail"...)
	if err := w.Commit(ctx, digest.FromBytes(want)); err != nil {
		t.Fatalf("Commit after the resumed upload: %v", err)
	}
}

// TestCommitSHA512 commits uploads whose digest is not SHA-256, so the
// file is read once more, at lengths that are not multiples of a block:
// a direct-I/O file would refuse those reads.
func TestCommitSHA512(t *testing.T) {
	ctx := context.Background()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{3, align + 5, chunkSize + 1} {
		data := make([]byte, n)
		_, _ = rand.Read(data)
		w, err := s.Writer(ctx, "u", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		d := digest.SHA512.FromBytes(data)
		if err := w.Commit(ctx, d); err != nil {
			t.Fatalf("%d bytes: Commit(%s): %v", n, d, err)
		}
		if size, err := s.Stat(ctx, d); err != nil || size != int64(n) {
			t.Fatalf("%d bytes: Stat = %d, %v", n, size, err)
		}
	}
}

// TestFlushAtChunkEnd: a flush that falls where a chunk ends stores that
// chunk once; the writes after it go to the next chunk, not over it again.
func TestFlushAtChunkEnd(t *testing.T) {
	var stored int64
	store := func(b []byte, _ int64) error { stored += int64(len(b)); return nil }
	p, err := newPipeline(sha256.New(), 0, nil, store, newChunkPool(chunkBudget))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	data := make([]byte, chunkSize)
	for i := range 3 {
		if err := p.write(data); err != nil {
			t.Fatal(err)
		}
		if err := p.flush(); err != nil {
			t.Fatal(err)
		}
		if want := int64(i+1) * chunkSize; stored != want {
			t.Fatalf("after %d chunk(s) and flushes: %d bytes stored, want %d", i+1, stored, want)
		}
	}
}
