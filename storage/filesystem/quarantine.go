package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// ErrReplaced says the file at a blob's path is no longer the one read:
// the blob was deleted and stored again meanwhile, so there is nothing to
// move aside. It comes wrapped with storage.ErrBlobUnknown: the copy read
// is no longer the blob's.
var ErrReplaced = errors.New("blob replaced since it was read")

func (s *Store) quarantineDir() string { return filepath.Join(s.root, "quarantine") }

// Quarantine moves blob d, which b (from Open) reads and whose bytes a
// scrub found do not hash to d, out of blobs/ into quarantine/, and
// returns where it went. The blob is then unknown, so a push of it, or a
// copy from another member, stores it again: a commit never replaces a
// blob already there (writer.go), bad or not.
//
// Only the file b reads is moved. The rename goes first and the check
// after, so no moment exists in which the path could change between the
// two: if the file moved is another (a collection deleted the bad blob and
// a push stored it again), it is put back and ErrReplaced returned.
func (s *Store) Quarantine(_ context.Context, d digest.Digest, b storage.Blob) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("%s: %w", d, storage.ErrBlobUnknown)
	}
	read, ok := b.(*blob)
	if !ok {
		return "", fmt.Errorf("quarantine %s: not a blob of this store", d)
	}
	was, err := read.Stat()
	if err != nil {
		return "", fmt.Errorf("quarantine %s: %w", d, err)
	}
	if err := os.MkdirAll(s.quarantineDir(), 0o755); err != nil {
		return "", fmt.Errorf("quarantine %s: %w", d, err)
	}
	path := s.blobPath(d)
	dst := filepath.Join(s.quarantineDir(), fmt.Sprintf("%s-%s-%s", d.Algorithm(), d.Encoded(), time.Now().UTC().Format("20060102T150405.000000000")))
	if err := os.Rename(path, dst); err != nil {
		return "", notFound(d, err)
	}
	moved, err := os.Stat(dst)
	if err != nil {
		return "", fmt.Errorf("quarantine %s: %w", d, err)
	}
	if !os.SameFile(was, moved) {
		// Put the good copy back; one stored since then is as good.
		if err := os.Link(dst, path); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("quarantine %s: putting back the copy stored meanwhile: %w", d, err)
		}
		if err := os.Remove(dst); err != nil {
			return "", fmt.Errorf("quarantine %s: %w", d, err)
		}
		return "", fmt.Errorf("%s: %w: %w", d, ErrReplaced, storage.ErrBlobUnknown)
	}
	s.count(-1, -moved.Size())
	if err := errors.Join(syncDir(filepath.Dir(path)), syncDir(s.quarantineDir())); err != nil {
		return dst, fmt.Errorf("quarantine %s: %w", d, err)
	}
	return dst, nil
}
