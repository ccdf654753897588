package metadb

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metalog"
)

// Repositories implements storage.Catalog.
func (s *manifests) Repositories(last string, n int) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return page(s.st.repos.names, last, n)
}

// Tags implements storage.Catalog.
func (s *manifests) Tags(repo, last string, n int) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.st.repos.get(repo, false)
	if r == nil {
		return nil, storage.ErrNameUnknown
	}
	return r.tags.names(last, n), nil
}

// Manifest implements storage.Manifests. The index says whether repo
// links d; the record comes from the cache or, on a miss, from disk.
func (s *manifests) Manifest(repo string, d digest.Digest) (*storage.Manifest, error) {
	k, _ := keyOf(d)
	s.mu.RLock()
	linked := s.st.links(repo, k)
	s.mu.RUnlock()
	if !linked || s.bad.has(k) { // a record known bad is not served
		return nil, storage.ErrManifestUnknown
	}
	if m := s.cache.get(k); m != nil {
		return m, nil
	}
	var m *storage.Manifest
	err := s.db.readMeta(func(meta *bolt.Cursor) error {
		var room [80]byte // a sha256 digest's key, on the stack
		var err error
		m, err = recordOf(seek(meta, appendManifestKey(room[:0], d)), d)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.cache.put(k, m)
	return m, nil
}

// readRecord reads the record of manifest d; storage.ErrManifestUnknown
// when it has none.
func readRecord(tx *bolt.Tx, d digest.Digest) (*storage.Manifest, error) {
	var room [80]byte
	return recordOf(tx.Bucket(bucketMeta).Get(appendManifestKey(room[:0], d)), d)
}

// recordOf decodes v, the stored entry of manifest d's record (nil: none);
// storage.ErrManifestUnknown when there is no record.
func recordOf(v []byte, d digest.Digest) (*storage.Manifest, error) {
	if v == nil {
		return nil, storage.ErrManifestUnknown
	}
	_, deleted, value, err := peekEntry(v) // no copy of the origin
	if err != nil {
		return nil, fmt.Errorf("manifest record %s: %w", d, err)
	}
	if deleted {
		return nil, storage.ErrManifestUnknown
	}
	m, err := decodeRecordOf(value, d)
	if err != nil {
		return nil, fmt.Errorf("manifest record %s: %w", d, err)
	}
	return m, nil
}

// Tag implements storage.Manifests.
func (s *manifests) Tag(repo, tag string) (digest.Digest, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if r := s.st.repos.get(repo, false); r != nil {
		if k, ok := r.tags.get(tag); ok {
			return s.st.digestOf(k), nil
		}
	}
	return "", storage.ErrTagUnknown
}

// PutManifest implements storage.Manifests. The manifest record itself is
// content-addressed and written only when it is missing or no repository
// links it (so a retag logs a link and a tag, not the manifest's bytes
// again, and a push of an unlinked record renews it against collection);
// CollectManifests drops records no repository links.
func (s *manifests) PutManifest(ctx context.Context, repo string, m *storage.Manifest, tag string) error {
	put := ManifestPut{Repo: repo, Manifest: m}
	if tag != "" {
		put.Tags = []string{tag}
	}
	return s.PutManifests(ctx, []ManifestPut{put})
}

// DeleteManifest implements storage.Manifests.
func (s *manifests) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	return s.write(ctx, func(st *state) ([]metalog.Op, error) {
		r := st.repos.get(repo, false)
		if r == nil {
			return nil, storage.ErrManifestUnknown
		}
		k, _ := keyOf(d)
		if _, ok := r.manifests[k]; !ok {
			return nil, storage.ErrManifestUnknown
		}
		ops := []metalog.Op{{Key: string(manifestLinkKey(repo, d)), Deleted: true}}
		r.tags.each(func(t []byte, tk dkey) bool {
			if tk == k {
				ops = append(ops, metalog.Op{Key: string(tagKey(repo, string(t))), Deleted: true})
			}
			return true
		})
		return ops, nil
	}, nil)
}

// DeleteTag implements storage.Manifests.
func (s *manifests) DeleteTag(ctx context.Context, repo, tag string) error {
	return s.write(ctx, func(st *state) ([]metalog.Op, error) {
		r := st.repos.get(repo, false)
		if r == nil {
			return nil, storage.ErrTagUnknown
		}
		if _, ok := r.tags.get(tag); !ok {
			return nil, storage.ErrTagUnknown
		}
		return []metalog.Op{{Key: string(tagKey(repo, tag)), Deleted: true}}, nil
	}, nil)
}

// Referrers implements storage.Manifests, from the index.
func (s *manifests) Referrers(repo string, d digest.Digest) []v1.Descriptor {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []v1.Descriptor
	if r := s.st.repos.get(repo, false); r != nil {
		k, _ := keyOf(d)
		for _, ref := range r.referrersOf(k) {
			if desc, ok := s.st.descOf(ref.manifest); ok {
				out = append(out, desc)
			}
		}
	}
	slices.SortFunc(out, func(a, b v1.Descriptor) int { return cmp.Compare(a.Digest, b.Digest) })
	return out
}

// LinkBlob implements storage.Links; size 0 records none, and a link
// without a size gets one.
func (s *links) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	return s.write(ctx, func(st *state) ([]metalog.Op, error) {
		return linkOps(st, repo, d, size), nil
	}, nil)
}

// linkOps returns the op linking blob d (size bytes, 0 if unknown) into
// repo, or none when it is linked with its size already.
func linkOps(st *state, repo string, d digest.Digest, size int64) []metalog.Op {
	if linked(st, repo, d) && (size <= 0 || st.repos.byName[repo].blobs[dkeyOf(d)] == size) {
		return nil
	}
	op := metalog.Op{Key: string(blobLinkKey(repo, d))}
	if size > 0 {
		op.Value = []byte(strconv.FormatInt(size, 10))
	}
	return []metalog.Op{op}
}

func linked(st *state, repo string, d digest.Digest) bool {
	if r := st.repos.get(repo, false); r != nil {
		_, ok := r.blobs[dkeyOf(d)]
		return ok
	}
	return false
}

// linkSize reads the size stored with a blob link; 0 when there is none.
func linkSize(v []byte) int64 {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// BlobLinked implements storage.Links.
func (s *links) BlobLinked(repo string, d digest.Digest) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if r := s.st.repos.get(repo, false); r != nil {
		_, ok := r.blobs[dkeyOf(d)]
		return ok
	}
	return false
}

// UnlinkBlob implements storage.Links.
func (s *links) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	return s.write(ctx, func(st *state) ([]metalog.Op, error) {
		if !linked(st, repo, d) {
			return nil, storage.ErrBlobUnknown
		}
		return []metalog.Op{{Key: string(blobLinkKey(repo, d)), Deleted: true}}, nil
	}, nil)
}

// UnlinkEverywhere implements storage.Inventory: one write.
func (s *links) UnlinkEverywhere(ctx context.Context, ds []digest.Digest) error {
	return s.write(ctx, func(st *state) ([]metalog.Op, error) {
		var ops []metalog.Op
		for _, d := range ds {
			k, _ := keyOf(d)
			st.repos.eachHolder(st.blobs[k], st.blobShared, k, func(r *repo) bool {
				ops = append(ops, metalog.Op{Key: string(blobLinkKey(r.name, d)), Deleted: true})
				return false
			})
		}
		return ops, nil
	}, nil)
}

// EachManifest implements storage.Inventory: every linked manifest, by
// repository, read from disk in one read transaction (a consistent view
// that holds no lock of the store and leaves the cache alone). It is for
// housekeeping, not the request path.
func (s *manifests) EachManifest(fn func(repo string, m *storage.Manifest) bool) {
	_ = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketMeta).Cursor()
		prefix := []byte("r" + sep)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			key, err := parseKey(k)
			if err != nil || key.kind != kindManifest {
				continue
			}
			if e, err := decodeEntry(v); err != nil || e.deleted {
				continue
			}
			m, err := readRecord(tx, digest.Digest(key.name))
			if err != nil {
				continue // a link to nothing: unknown to reads too
			}
			if !fn(key.repo, m) {
				return nil
			}
		}
		return nil
	})
}

// BlobRepos implements storage.Inventory, from the index.
func (s *links) BlobRepos(d digest.Digest) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, _ := keyOf(d)
	var names []string
	s.st.repos.eachHolder(s.st.blobs[k], s.st.blobShared, k, func(r *repo) bool {
		names = append(names, r.name)
		return false
	})
	return names
}

// Written returns when the live entry of a tag (tag != "") or of a
// manifest link (tag == "") was last written, from its stamp; ok is false
// when there is no such entry. It reads the database: for housekeeping,
// not for the request path.
func (s *manifests) Written(repo, tag string, d digest.Digest) (at time.Time, ok bool) {
	key := tagKey(repo, tag)
	if tag == "" {
		key = manifestLinkKey(repo, d)
	}
	_ = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(key)
		if v == nil {
			return nil
		}
		e, err := decodeEntry(v)
		if err != nil || e.deleted {
			return nil
		}
		// The clock's counter orders writes within a millisecond.
		at, ok = time.UnixMilli(int64(e.stamp>>16)).Add(time.Duration(e.stamp&0xffff)), true
		return nil
	})
	return at, ok
}
