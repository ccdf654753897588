// Package registry2 adopts a CNCF Distribution (registry:2) storage root in
// place: its blobs become atoll's without their bytes passing through
// atoll (a hard link on a filesystem, a server-side copy in an S3 bucket;
// registry:2's tree is left as it was, so it still works with registry:2),
// and its repositories, tags, manifest revisions and layer links become
// atoll's metadata. Uploads in progress are dropped with a warning.
//
// registry:2's layout under its root directory (storage.filesystem
// rootdirectory, /var/lib/registry in its image; or the key prefix
// storage.s3 rootdirectory of its bucket):
//
//	docker/registry/v2/blobs/<alg>/<2 hex>/<hex>/data                         content
//	docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link            blob in repository
//	docker/registry/v2/repositories/<name>/_manifests/revisions/<alg>/<hex>/link   manifest in repository
//	docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link  tag -> manifest
//	docker/registry/v2/repositories/<name>/_uploads/<id>/...                   upload in progress
//
// A link file holds a digest, the one its path names for layers and
// revisions. registry:2 deletes a manifest by removing its revision link
// (on a filesystem the directory may stay) and a tag by removing its
// directory, so a revision without a link, and a tag whose manifest has no
// revision link, are deleted and stay deleted here. A repository's name is
// its path under repositories/ up to the directory holding _layers,
// _manifests or _uploads.
//
// The tree is read through a Source (DirSource, BucketSource); blobs are
// adopted through a capability of atoll's store that fits the source
// (LinkAdopter, ObjectAdopter), else copied through the store's writer.
//
// Invariant: an import can be killed at any point and run again; every step
// is idempotent (a blob already held is skipped, metadata writes set what
// they set before), and the import is recorded as done only at its end.
package registry2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
)

// v2Root is registry:2's tree under its root directory.
const v2Root = "docker/registry/v2"

// Source is a registry:2 root as an import reads it. Paths are
// slash-separated and relative to the root (the directory or key prefix
// holding docker/registry/v2). Errors for a missing path wrap
// fs.ErrNotExist. Methods may be called concurrently.
type Source interface {
	// String names the source in logs and in the import's record.
	String() string
	// Walk calls fn for each file under dir, in lexical order, and for
	// each directory where the source has directories (a bucket has only
	// keys). A missing dir is walked as empty; fn's error stops the walk
	// and is returned.
	Walk(ctx context.Context, dir string, fn func(Entry) error) error
	// Stat describes the file or directory at path.
	Stat(ctx context.Context, path string) (Entry, error)
	// Open reads the file at path.
	Open(ctx context.Context, path string) (io.ReadCloser, error)
	// adopt makes the file at path blob d of dst without its bytes passing
	// through atoll, when dst has the capability that fits the source; it
	// returns errNoAdopt when it has none.
	adopt(ctx context.Context, dst Blobs, d digest.Digest, path string, size int64) error
}

// Entry is a file or directory of a Source.
type Entry struct {
	Path string // relative to the source's root
	Size int64
	Dir  bool
}

// errNoAdopt: the store cannot adopt blobs of this source; they are copied.
var errNoAdopt = errors.New("the store cannot adopt this source's blobs")

// maxSmallFile bounds what readFile reads (links, manifests).
const maxSmallFile = 8 << 20

// readFile reads the small file at path whole.
func readFile(ctx context.Context, src Source, path string) ([]byte, error) {
	r, err := src.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxSmallFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSmallFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxSmallFile)
	}
	return b, nil
}

// Detect reports whether src holds registry:2's layout.
func Detect(ctx context.Context, src Source) bool {
	for _, sub := range []string{"blobs", "repositories"} {
		if e, err := src.Stat(ctx, v2Root+"/"+sub); err != nil || !e.Dir {
			return false
		}
	}
	return true
}

// blobPath is where registry:2 keeps the content of d.
func blobPath(d digest.Digest) string {
	hex := d.Encoded()
	return v2Root + "/blobs/" + string(d.Algorithm()) + "/" + hex[:2] + "/" + hex + "/data"
}

// sourceBlob is one blob of registry:2's store.
type sourceBlob struct {
	digest digest.Digest
	path   string
	size   int64
}

// listBlobs lists every blob registry:2 holds.
func listBlobs(ctx context.Context, src Source) ([]sourceBlob, error) {
	var out []sourceBlob
	base := v2Root + "/blobs/"
	err := src.Walk(ctx, v2Root+"/blobs", func(e Entry) error {
		rel, ok := strings.CutPrefix(e.Path, base)
		if e.Dir || !ok {
			return nil
		}
		parts := strings.Split(rel, "/") // <alg>/<2 hex>/<hex>/data
		if len(parts) != 4 || parts[3] != "data" {
			return nil
		}
		d := digest.NewDigestFromEncoded(digest.Algorithm(parts[0]), parts[2])
		if d.Validate() != nil {
			return nil
		}
		out = append(out, sourceBlob{digest: d, path: e.Path, size: e.Size})
		return nil
	})
	return out, err
}

// repository is what registry:2 holds of one repository.
type repository struct {
	name      string
	layers    []digest.Digest        // linked blobs
	revisions []digest.Digest        // manifests with their revision link
	seen      map[digest.Digest]bool // revisions with a directory, linked or not
	tags      map[string]string      // tag -> path of its current link
	uploads   map[string]bool        // upload ids
}

// deleted counts the revisions whose link registry:2 removed (seen only
// where the source keeps empty directories, a filesystem).
func (r *repository) deleted() int { return len(r.seen) - len(r.revisions) }

// listRepositories reads the repositories in one walk, sorted by name.
func listRepositories(ctx context.Context, src Source) ([]*repository, error) {
	repos := map[string]*repository{}
	base := v2Root + "/repositories/"
	err := src.Walk(ctx, v2Root+"/repositories", func(e Entry) error {
		rel, ok := strings.CutPrefix(e.Path, base)
		if !ok {
			return nil
		}
		parts := strings.Split(rel, "/")
		i := 0
		for i < len(parts) && !strings.HasPrefix(parts[i], "_") {
			i++
		}
		if i == 0 || i == len(parts) {
			return nil // a directory above a repository's own
		}
		name, kind, rest := strings.Join(parts[:i], "/"), parts[i], parts[i+1:]
		r := repos[name]
		if r == nil {
			r = &repository{name: name, seen: map[digest.Digest]bool{}, tags: map[string]string{}, uploads: map[string]bool{}}
			repos[name] = r
		}
		r.add(kind, rest, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*repository, 0, len(repos))
	for _, r := range repos {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// add records one entry of the repository, at rest under its kind
// (_layers, _manifests, _uploads).
func (r *repository) add(kind string, rest []string, e Entry) {
	link := !e.Dir && len(rest) > 0 && rest[len(rest)-1] == "link"
	switch {
	case kind == "_layers" && link && len(rest) == 3:
		if d, ok := linkDigest(rest[0], rest[1]); ok {
			r.layers = append(r.layers, d)
		}
	case kind == "_manifests" && len(rest) >= 3 && rest[0] == "revisions":
		d, ok := linkDigest(rest[1], rest[2])
		if !ok {
			return
		}
		r.seen[d] = true
		if link && len(rest) == 4 {
			r.revisions = append(r.revisions, d)
		}
	case kind == "_manifests" && link && len(rest) == 4 && rest[0] == "tags" && rest[2] == "current":
		r.tags[rest[1]] = e.Path
	case kind == "_uploads" && len(rest) > 0:
		r.uploads[rest[0]] = true
	}
}

// linkDigest is the digest a link's path names.
func linkDigest(alg, hex string) (digest.Digest, bool) {
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
	return d, d.Validate() == nil
}

// readLink reads a link file; ok is false when it does not exist.
func readLink(ctx context.Context, src Source, path string) (d digest.Digest, ok bool, err error) {
	b, err := readFile(ctx, src, path)
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
