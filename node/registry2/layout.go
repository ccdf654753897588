// Package registry2 adopts a CNCF Distribution (registry:2) storage
// directory in place: its blobs become atoll's by hard link (no byte is
// copied on the same filesystem, and registry:2's tree is left as it was,
// so the volume still works with registry:2), and its repositories, tags,
// manifest revisions and layer links become atoll's metadata. Uploads in
// progress are dropped with a warning.
//
// registry:2's layout under its root directory (storage.filesystem
// rootdirectory, /var/lib/registry in its image):
//
//	docker/registry/v2/blobs/<alg>/<2 hex>/<hex>/data                         content
//	docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link            blob in repository
//	docker/registry/v2/repositories/<name>/_manifests/revisions/<alg>/<hex>/link   manifest in repository
//	docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link  tag -> manifest
//	docker/registry/v2/repositories/<name>/_uploads/<id>/...                   upload in progress
//
// A link file holds a digest. registry:2 deletes a manifest by removing its
// revision link (the directory may stay) and a tag by removing its
// directory, so a revision without a link, and a tag whose manifest has no
// revision link, are deleted and stay deleted here. A repository's name is
// its path under repositories/ up to the directory holding _manifests.
//
// Invariant: an import can be killed at any point and run again; every step
// is idempotent (a blob already held is skipped, metadata writes set what
// they set before), and the import is recorded as done only at its end.
package registry2

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
)

// v2Root is registry:2's tree under its root directory.
const v2Root = "docker/registry/v2"

// Detect reports whether dir holds registry:2's layout.
func Detect(dir string) bool {
	for _, sub := range []string{"blobs", "repositories"} {
		if fi, err := os.Stat(filepath.Join(dir, v2Root, sub)); err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// layout reads one registry:2 root directory.
type layout struct{ root string } // .../docker/registry/v2

func newLayout(dir string) layout { return layout{root: filepath.Join(dir, v2Root)} }

// blobPath is where registry:2 keeps the content of d.
func (l layout) blobPath(d digest.Digest) string {
	hex := d.Encoded()
	return filepath.Join(l.root, "blobs", string(d.Algorithm()), hex[:2], hex, "data")
}

// sourceBlob is one blob of registry:2's store.
type sourceBlob struct {
	digest digest.Digest
	path   string
	size   int64
}

// blobs lists every blob registry:2 holds.
func (l layout) blobs() ([]sourceBlob, error) {
	var out []sourceBlob
	base := filepath.Join(l.root, "blobs")
	err := filepath.WalkDir(base, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() || e.Name() != "data" {
			return nil
		}
		rel, _ := filepath.Rel(base, path) // <alg>/<2 hex>/<hex>/data
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) != 4 {
			return nil
		}
		d := digest.NewDigestFromEncoded(digest.Algorithm(parts[0]), parts[2])
		if d.Validate() != nil {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		out = append(out, sourceBlob{digest: d, path: path, size: fi.Size()})
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return out, err
}

// repositories lists the repository names, sorted.
func (l layout) repositories() ([]string, error) {
	var out []string
	base := filepath.Join(l.root, "repositories")
	err := filepath.WalkDir(base, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			return nil
		}
		switch e.Name() {
		case "_manifests":
			rel, _ := filepath.Rel(base, filepath.Dir(path))
			out = append(out, filepath.ToSlash(rel))
			return filepath.SkipDir
		case "_layers", "_uploads":
			return filepath.SkipDir
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return out, err
}

func (l layout) repoDir(repo string) string {
	return filepath.Join(l.root, "repositories", filepath.FromSlash(repo))
}

// readLink reads a link file; ok is false when it does not exist.
func readLink(path string) (d digest.Digest, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	d, err = digest.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return "", false, fmt.Errorf("link %s: %w", path, err)
	}
	return d, true, nil
}

// linked lists the digests of <dir>/<alg>/<hex>/link files (layer links,
// manifest revisions); a directory without its link file was deleted.
// deleted counts those.
func linked(dir string) (ds []digest.Digest, deleted int, err error) {
	algs, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	for _, alg := range algs {
		hexes, err := os.ReadDir(filepath.Join(dir, alg.Name()))
		if err != nil {
			continue // not a directory
		}
		for _, h := range hexes {
			d, ok, err := readLink(filepath.Join(dir, alg.Name(), h.Name(), "link"))
			if err != nil {
				return nil, 0, err
			}
			if !ok {
				deleted++
				continue
			}
			ds = append(ds, d)
		}
	}
	return ds, deleted, nil
}

// layers lists the blobs linked in repo.
func (l layout) layers(repo string) ([]digest.Digest, error) {
	ds, _, err := linked(filepath.Join(l.repoDir(repo), "_layers"))
	return ds, err
}

// revisions lists the manifests of repo and how many were deleted.
func (l layout) revisions(repo string) ([]digest.Digest, int, error) {
	return linked(filepath.Join(l.repoDir(repo), "_manifests", "revisions"))
}

// tags maps repo's tags to their manifests.
func (l layout) tags(repo string) (map[string]digest.Digest, error) {
	dir := filepath.Join(l.repoDir(repo), "_manifests", "tags")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]digest.Digest{}
	for _, e := range entries {
		d, ok, err := readLink(filepath.Join(dir, e.Name(), "current", "link"))
		if err != nil {
			return nil, err
		}
		if ok {
			out[e.Name()] = d
		}
	}
	return out, nil
}

// uploads lists repo's uploads in progress.
func (l layout) uploads(repo string) []string {
	entries, _ := os.ReadDir(filepath.Join(l.repoDir(repo), "_uploads"))
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}
