package metadb

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metalog"
)

// state is the in-memory copy of the live (not deleted) keys of the meta
// bucket; it serves every read. It is guarded by Store.mu.
type state struct {
	manifests map[digest.Digest]*storage.Manifest
	repos     map[string]*repo
	names     []string // sorted keys of repos
	// pins are the digests immutable tags were first bound to, by
	// pinKey(repo, tag); they outlive the tag (pin.go).
	pins map[string]digest.Digest
}

type repo struct {
	tags      map[string]digest.Digest
	manifests map[digest.Digest]struct{}
	// blobs maps each linked blob to its size in bytes, 0 when the link
	// was made without one (before sizes were recorded, or by a cache).
	blobs map[digest.Digest]int64
}

func (r *repo) empty() bool { return len(r.tags)+len(r.manifests)+len(r.blobs) == 0 }

func newState() *state {
	return &state{manifests: map[digest.Digest]*storage.Manifest{}, repos: map[string]*repo{}, pins: map[string]digest.Digest{}}
}

// repo returns repository name, creating it when create is set.
func (s *state) repo(name string, create bool) *repo {
	r := s.repos[name]
	if r == nil && create {
		r = &repo{tags: map[string]digest.Digest{}, manifests: map[digest.Digest]struct{}{}, blobs: map[digest.Digest]int64{}}
		s.repos[name] = r
		i, _ := slices.BinarySearch(s.names, name)
		s.names = slices.Insert(s.names, i, name)
	}
	return r
}

// apply sets or deletes one key. A repository exists while it has keys.
func (s *state) apply(op metalog.Op) error {
	k, err := parseKey([]byte(op.Key))
	if err != nil {
		return err
	}
	if k.manifest != "" {
		if op.Deleted {
			delete(s.manifests, k.manifest)
			return nil
		}
		m := new(storage.Manifest)
		if err := json.Unmarshal(op.Value, m); err != nil {
			return fmt.Errorf("manifest record %s: %w", k.manifest, err)
		}
		s.manifests[k.manifest] = m
		return nil
	}
	if k.kind == kindPin {
		if op.Deleted {
			delete(s.pins, pinKey(k.repo, k.name))
		} else {
			s.pins[pinKey(k.repo, k.name)] = digest.Digest(op.Value)
		}
		return nil
	}
	r := s.repo(k.repo, !op.Deleted)
	if r == nil {
		return nil
	}
	d := digest.Digest(k.name)
	switch {
	case k.kind == kindTag && op.Deleted:
		delete(r.tags, k.name)
	case k.kind == kindTag:
		r.tags[k.name] = digest.Digest(op.Value)
	case k.kind == kindManifest && op.Deleted:
		delete(r.manifests, d)
	case k.kind == kindManifest:
		r.manifests[d] = struct{}{}
	case k.kind == kindBlob && op.Deleted:
		delete(r.blobs, d)
	case k.kind == kindBlob:
		r.blobs[d] = linkSize(op.Value)
	}
	if r.empty() {
		delete(s.repos, k.repo)
		if i, ok := slices.BinarySearch(s.names, k.repo); ok {
			s.names = slices.Delete(s.names, i, i+1)
		}
	}
	return nil
}

// page returns up to n of the sorted names after last (n <= 0: all).
func page(sorted []string, last string, n int) []string {
	i := sort.SearchStrings(sorted, last)
	if i < len(sorted) && sorted[i] == last {
		i++
	}
	out := sorted[i:]
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return slices.Clone(out)
}
