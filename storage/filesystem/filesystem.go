// Package filesystem is a content-addressed blob store on a local disk.
//
// Layout under the root directory:
//
//	blobs/<algorithm>/<first two hex>/<hex>   committed blobs
//	uploads/<upload id>                       bytes of an upload in progress
//
// An upload is hashed while it is written (one pass over the bytes), made
// durable with fsync, and committed by renaming it into blobs/, so a blob
// path holds either nothing or the complete, verified content.
package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// Store implements storage.BlobStore on a directory.
type Store struct {
	root  string
	blobs atomic.Int64 // blobs held
	bytes atomic.Int64 // their total size
	// chunks are the uploads' buffers (pipeline.go, chunks.go), reused
	// across them.
	chunks *chunkPool
}

var (
	_ storage.BlobStore     = (*Store)(nil)
	_ storage.BlobWalker    = (*Store)(nil)
	_ storage.UsageReporter = (*Store)(nil)
)

// New returns a store rooted at dir, creating its directories, and counts
// the blobs already there.
func New(dir string) (*Store, error) {
	s := &Store{root: dir, chunks: newChunkPool(chunkBudget)}
	for _, d := range []string{s.blobsDir(), s.uploadsDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("blob store: %w", err)
		}
	}
	err := s.Walk(context.Background(), func(_ digest.Digest, size int64) error {
		s.count(1, size)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("blob store: %w", err)
	}
	return s, nil
}

// Usage implements storage.UsageReporter.
func (s *Store) Usage() (blobs, bytes int64) { return s.blobs.Load(), s.bytes.Load() }

func (s *Store) count(blobs, bytes int64) {
	s.blobs.Add(blobs)
	s.bytes.Add(bytes)
}

func (s *Store) blobsDir() string   { return filepath.Join(s.root, "blobs") }
func (s *Store) uploadsDir() string { return filepath.Join(s.root, "uploads") }

// blobPath is where blob d lives. d must be validated.
func (s *Store) blobPath(d digest.Digest) string {
	hex := d.Encoded()
	return filepath.Join(s.blobsDir(), string(d.Algorithm()), hex[:2], hex)
}

// uploadPath is where the bytes of upload id live.
func (s *Store) uploadPath(id string) (string, error) {
	if id == "" || strings.ContainsAny(id, `/\`) || id == "." || id == ".." {
		return "", fmt.Errorf("upload id %q: %w", id, storage.ErrUploadUnknown)
	}
	return filepath.Join(s.uploadsDir(), id), nil
}

// Stat implements storage.BlobStore.
func (s *Store) Stat(_ context.Context, d digest.Digest) (int64, error) {
	if err := d.Validate(); err != nil {
		return 0, fmt.Errorf("%s: %w", d, storage.ErrBlobUnknown)
	}
	fi, err := os.Stat(s.blobPath(d))
	if err != nil {
		return 0, notFound(d, err)
	}
	return fi.Size(), nil
}

// Open implements storage.BlobStore.
func (s *Store) Open(_ context.Context, d digest.Digest) (storage.Blob, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", d, storage.ErrBlobUnknown)
	}
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		return nil, notFound(d, err)
	}
	adviseSequential(f)
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("stat blob %s: %w", d, err)
	}
	return &blob{File: f, size: fi.Size(), mod: fi.ModTime()}, nil
}

// Delete implements storage.BlobStore.
func (s *Store) Delete(_ context.Context, d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%s: %w", d, storage.ErrBlobUnknown)
	}
	path := s.blobPath(d)
	fi, err := os.Stat(path)
	if err != nil {
		return notFound(d, err)
	}
	if err := os.Remove(path); err != nil {
		return notFound(d, err)
	}
	s.count(-1, -fi.Size())
	return nil
}

// Walk implements storage.BlobWalker.
func (s *Store) Walk(ctx context.Context, fn func(d digest.Digest, size int64) error) error {
	return filepath.WalkDir(s.blobsDir(), func(path string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted since its directory was read
		}
		if err != nil || e.IsDir() {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.blobsDir(), path)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) != 3 {
			return nil
		}
		d := digest.NewDigestFromEncoded(digest.Algorithm(parts[0]), parts[2])
		if d.Validate() != nil {
			return nil
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted since its directory was read
		}
		if err != nil {
			return err
		}
		return fn(d, fi.Size())
	})
}

func notFound(d digest.Digest, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", d, storage.ErrBlobUnknown)
	}
	return fmt.Errorf("blob %s: %w", d, err)
}

type blob struct {
	*os.File
	size int64
	mod  time.Time
}

func (b *blob) Size() int64        { return b.size }
func (b *blob) ModTime() time.Time { return b.mod }

// Check reports whether the store accepts writes.
func (s *Store) Check(context.Context) error {
	f, err := os.CreateTemp(s.uploadsDir(), ".check-*")
	if err != nil {
		return fmt.Errorf("blob store not writable: %w", err)
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}
