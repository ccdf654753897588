package registry2

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Bucket is atoll's S3 store as a BucketSource reads registry:2's tree
// kept next to it in the same bucket (s3.Store). Keys are relative to the
// store's root directory, which is registry:2's too; a missing key is an
// error wrapping fs.ErrNotExist.
type Bucket interface {
	// WalkKeys calls fn with every key under prefix, in lexical order.
	WalkKeys(ctx context.Context, prefix string, fn func(key string, size int64) error) error
	StatKey(ctx context.Context, key string) (int64, error)
	OpenKey(ctx context.Context, key string) (io.ReadCloser, error)
}

// ObjectAdopter is the capability of a store in a bucket (s3.Store):
// taking the object at key of its own bucket as blob d by a server-side
// copy.
type ObjectAdopter interface {
	AdoptObject(ctx context.Context, d digest.Digest, key string, size int64) error
}

// BucketSource is registry:2's tree in the bucket of b, under b's root
// directory; name names it (s3://bucket/root). Its blobs are adopted by a
// server-side copy when the import's store is b itself (b is compared with
// the store, so it is a pointer).
func BucketSource(b Bucket, name string) Source { return bucketSource{b: b, name: name} }

type bucketSource struct {
	b    Bucket
	name string
}

func (s bucketSource) String() string { return s.name }

// Walk lists the keys under dir: a bucket has no directories.
func (s bucketSource) Walk(ctx context.Context, dir string, fn func(Entry) error) error {
	return s.b.WalkKeys(ctx, strings.TrimSuffix(dir, "/")+"/", func(key string, size int64) error {
		return fn(Entry{Path: key, Size: size})
	})
}

// errFound stops a walk at its first key.
var errFound = errors.New("found")

// Stat is a key's size, or a directory where keys lie under path/.
func (s bucketSource) Stat(ctx context.Context, path string) (Entry, error) {
	err := s.b.WalkKeys(ctx, strings.TrimSuffix(path, "/")+"/", func(string, int64) error { return errFound })
	if errors.Is(err, errFound) {
		return Entry{Path: path, Dir: true}, nil
	}
	if err != nil {
		return Entry{}, err
	}
	size, err := s.b.StatKey(ctx, path)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Path: path, Size: size}, nil
}

func (s bucketSource) Open(ctx context.Context, path string) (io.ReadCloser, error) {
	return s.b.OpenKey(ctx, path)
}

func (s bucketSource) adopt(ctx context.Context, dst Blobs, d digest.Digest, key string, size int64) error {
	a, ok := dst.(ObjectAdopter)
	if !ok || any(dst) != any(s.b) {
		return errNoAdopt // another store: its bucket may not be this one
	}
	return a.AdoptObject(ctx, d, key, size)
}
