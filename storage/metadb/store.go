// Package metadb is the metadata store over an embedded bbolt database.
// Every committed bbolt transaction is durable (fsync) and atomic, so the
// store survives kill -9 at any instant: a write is either wholly there after
// restart or wholly absent. Reads are served from an in-memory copy loaded at
// Open and updated after each commit, so they never touch the disk.
package metadb

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/atollhq/atoll/storage"
)

// Store implements storage.Metadata.
type Store struct {
	db *bolt.DB

	wmu sync.Mutex   // serialises writers so memory applies in commit order
	mu  sync.RWMutex // guards st
	st  *state
}

var _ storage.Metadata = (*Store)(nil)

// Open opens or creates the database at path and loads it into memory.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("metadata directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open metadata %s: %w", path, err)
	}
	s := &Store{db: db, st: newState()}
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) load() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketUploads); err != nil {
			return err
		}
		b, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			key, err := parseKey(k)
			if err != nil {
				return err
			}
			if key.manifest != "" {
				var m storage.Manifest
				if err := json.Unmarshal(v, &m); err != nil {
					return fmt.Errorf("manifest record %s: %w", key.manifest, err)
				}
				s.st.manifests[key.manifest] = &m
				return nil
			}
			r := s.st.repo(key.repo, true)
			switch key.kind {
			case kindTag:
				r.tags[key.name] = digest.Digest(v)
			case kindManifest:
				r.manifests[digest.Digest(key.name)] = struct{}{}
			case kindBlob:
				r.blobs[digest.Digest(key.name)] = struct{}{}
			}
			return nil
		})
	})
}

// update runs fn in a durable transaction and, once it committed, apply on
// the in-memory state.
func (s *Store) update(ctx context.Context, fn func(b *bolt.Bucket) error, apply func(st *state)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.db.Update(func(tx *bolt.Tx) error { return fn(tx.Bucket(bucketMeta)) }); err != nil {
		return fmt.Errorf("metadata write: %w", err)
	}
	s.mu.Lock()
	apply(s.st)
	s.mu.Unlock()
	return nil
}

// Repositories implements storage.Catalog.
func (s *Store) Repositories(last string, n int) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return page(s.st.names, last, n)
}

// Tags implements storage.Catalog.
func (s *Store) Tags(repo, last string, n int) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.st.repo(repo, false)
	if r == nil {
		return nil, storage.ErrNameUnknown
	}
	tags := make([]string, 0, len(r.tags))
	for t := range r.tags {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	return page(tags, last, n), nil
}

// Manifest implements storage.Manifests.
func (s *Store) Manifest(repo string, d digest.Digest) (*storage.Manifest, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if r := s.st.repo(repo, false); r != nil {
		if _, ok := r.manifests[d]; ok {
			return s.st.manifests[d], nil
		}
	}
	return nil, storage.ErrManifestUnknown
}

// Tag implements storage.Manifests.
func (s *Store) Tag(repo, tag string) (digest.Digest, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if r := s.st.repo(repo, false); r != nil {
		if d, ok := r.tags[tag]; ok {
			return d, nil
		}
	}
	return "", storage.ErrTagUnknown
}

// PutManifest implements storage.Manifests.
func (s *Store) PutManifest(ctx context.Context, repo string, m *storage.Manifest, tag string) error {
	d := m.Descriptor.Digest
	rec, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode manifest %s: %w", d, err)
	}
	return s.update(ctx, func(b *bolt.Bucket) error {
		if err := b.Put(manifestKey(d), rec); err != nil {
			return err
		}
		if err := b.Put(manifestLinkKey(repo, d), nil); err != nil {
			return err
		}
		if tag != "" {
			return b.Put(tagKey(repo, tag), []byte(d))
		}
		return nil
	}, func(st *state) {
		st.manifests[d] = m
		r := st.repo(repo, true)
		r.manifests[d] = struct{}{}
		if tag != "" {
			r.tags[tag] = d
		}
	})
}

// DeleteManifest implements storage.Manifests.
func (s *Store) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	if _, err := s.Manifest(repo, d); err != nil {
		return err
	}
	s.mu.RLock()
	var tags []string
	for t, td := range s.st.repo(repo, false).tags {
		if td == d {
			tags = append(tags, t)
		}
	}
	orphan := true
	for name, r := range s.st.repos {
		if _, ok := r.manifests[d]; ok && name != repo {
			orphan = false
		}
	}
	s.mu.RUnlock()
	return s.update(ctx, func(b *bolt.Bucket) error {
		for _, t := range tags {
			if err := b.Delete(tagKey(repo, t)); err != nil {
				return err
			}
		}
		if orphan {
			if err := b.Delete(manifestKey(d)); err != nil {
				return err
			}
		}
		return b.Delete(manifestLinkKey(repo, d))
	}, func(st *state) {
		r := st.repo(repo, false)
		delete(r.manifests, d)
		for _, t := range tags {
			delete(r.tags, t)
		}
		if !st.linked(d) {
			delete(st.manifests, d)
		}
	})
}

// DeleteTag implements storage.Manifests.
func (s *Store) DeleteTag(ctx context.Context, repo, tag string) error {
	if _, err := s.Tag(repo, tag); err != nil {
		return err
	}
	return s.update(ctx, func(b *bolt.Bucket) error {
		return b.Delete(tagKey(repo, tag))
	}, func(st *state) {
		delete(st.repo(repo, false).tags, tag)
	})
}

// Referrers implements storage.Manifests.
func (s *Store) Referrers(repo string, d digest.Digest) []v1.Descriptor {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []v1.Descriptor
	if r := s.st.repo(repo, false); r != nil {
		for md := range r.manifests {
			if m := s.st.manifests[md]; m != nil && m.Subject == d {
				out = append(out, m.Descriptor)
			}
		}
	}
	slices.SortFunc(out, func(a, b v1.Descriptor) int { return cmp.Compare(a.Digest, b.Digest) })
	return out
}

// LinkBlob implements storage.Links.
func (s *Store) LinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	if s.BlobLinked(repo, d) {
		return nil
	}
	return s.update(ctx, func(b *bolt.Bucket) error {
		return b.Put(blobLinkKey(repo, d), nil)
	}, func(st *state) {
		st.repo(repo, true).blobs[d] = struct{}{}
	})
}

// BlobLinked implements storage.Links.
func (s *Store) BlobLinked(repo string, d digest.Digest) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if r := s.st.repo(repo, false); r != nil {
		_, ok := r.blobs[d]
		return ok
	}
	return false
}

// UnlinkBlob implements storage.Links.
func (s *Store) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	if !s.BlobLinked(repo, d) {
		return storage.ErrBlobUnknown
	}
	return s.update(ctx, func(b *bolt.Bucket) error {
		return b.Delete(blobLinkKey(repo, d))
	}, func(st *state) {
		delete(st.repo(repo, false).blobs, d)
	})
}
