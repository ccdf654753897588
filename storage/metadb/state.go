package metadb

import (
	"slices"
	"sort"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// state is the in-memory copy of the meta bucket that serves every read.
// It is guarded by Store.mu.
type state struct {
	manifests map[digest.Digest]*storage.Manifest
	repos     map[string]*repo
	names     []string // sorted keys of repos
}

type repo struct {
	tags      map[string]digest.Digest
	manifests map[digest.Digest]struct{}
	blobs     map[digest.Digest]struct{}
}

func newState() *state {
	return &state{manifests: map[digest.Digest]*storage.Manifest{}, repos: map[string]*repo{}}
}

// repo returns repository name, creating it when create is set.
func (s *state) repo(name string, create bool) *repo {
	r := s.repos[name]
	if r == nil && create {
		r = &repo{tags: map[string]digest.Digest{}, manifests: map[digest.Digest]struct{}{}, blobs: map[digest.Digest]struct{}{}}
		s.repos[name] = r
		i, _ := slices.BinarySearch(s.names, name)
		s.names = slices.Insert(s.names, i, name)
	}
	return r
}

// linked reports whether any repository links manifest d.
func (s *state) linked(d digest.Digest) bool {
	for _, r := range s.repos {
		if _, ok := r.manifests[d]; ok {
			return true
		}
	}
	return false
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
