package filesystem

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// Adopt makes the file at path blob d by hard-linking it into the store:
// no byte is copied and the file stays where it is (importing a registry:2
// directory in place). The caller vouches for the content. A blob already
// held is left as it is. It fails, holding nothing new, when the file is
// on another filesystem or links are not supported; the caller then copies.
func (s *Store) Adopt(d digest.Digest, path string) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%s: %w", d, storage.ErrBlobUnknown)
	}
	dst := s.blobPath(d)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("adopt %s: %w", d, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("adopt %s: %w", d, err)
	}
	if err := os.Link(path, dst); errors.Is(err, fs.ErrExist) {
		return nil // adopted meanwhile
	} else if err != nil {
		return fmt.Errorf("adopt %s: %w", d, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	s.count(1, fi.Size())
	return nil
}
