package registry2

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
)

// LinkAdopter is the capability of a store on a filesystem
// (filesystem.Store): taking the file at path as blob d by hard link,
// without copying it. An error (another filesystem, say) makes the import
// copy the blob instead.
type LinkAdopter interface {
	Adopt(d digest.Digest, path string) error
}

// DirSource is registry:2's root directory dir on a filesystem.
func DirSource(dir string) Source {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = filepath.Clean(dir)
	}
	return dirSource{root: abs}
}

type dirSource struct{ root string } // absolute

func (s dirSource) String() string { return s.root }

func (s dirSource) path(rel string) string { return filepath.Join(s.root, filepath.FromSlash(rel)) }

func (s dirSource) Walk(ctx context.Context, dir string, fn func(Entry) error) error {
	base := s.path(dir)
	err := filepath.WalkDir(base, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != base {
				return nil // removed meanwhile
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if path == base {
			return nil
		}
		rel, err := filepath.Rel(s.root, path)
		if err != nil {
			return err
		}
		entry := Entry{Path: filepath.ToSlash(rel), Dir: e.IsDir()}
		if !e.IsDir() {
			if !e.Type().IsRegular() {
				return nil
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			entry.Size = fi.Size()
		}
		return fn(entry)
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (s dirSource) Stat(_ context.Context, rel string) (Entry, error) {
	fi, err := os.Stat(s.path(rel))
	if err != nil {
		return Entry{}, err
	}
	return Entry{Path: rel, Size: fi.Size(), Dir: fi.IsDir()}, nil
}

func (s dirSource) Open(_ context.Context, rel string) (io.ReadCloser, error) {
	return os.Open(s.path(rel))
}

func (s dirSource) adopt(_ context.Context, dst Blobs, d digest.Digest, rel string, _ int64) error {
	a, ok := dst.(LinkAdopter)
	if !ok {
		return errNoAdopt
	}
	return a.Adopt(d, s.path(rel))
}
