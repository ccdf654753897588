package metadb

import (
	"context"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage/metalog"
)

// A pin records the digest an immutable tag was first bound to. It is
// replicated metadata like a tag, but outside the repository: it makes no
// repository exist and survives the tag, so the binding is decided once.
// Only the member that decides a tag's first push writes its pin.

func pinKey(repo, tag string) string { return string(pinKeyBytes(repo, tag)) }

// Pin binds tag of repo, unless it is bound already, to the digest the
// tag points at if it exists, else to d; it returns the digest the tag is
// bound to after the call. The check and the write are one step under
// the store's write lock, applied here before Pin returns.
func (s *pins) Pin(ctx context.Context, repo, tag string, d digest.Digest) (digest.Digest, error) {
	var bound digest.Digest
	err := s.write(ctx, func(st *state) ([]metalog.Op, error) {
		if cur, ok := st.pins[pinKey(repo, tag)]; ok {
			bound = cur
			return nil, nil
		}
		bound = d
		if r := st.repos.get(repo, false); r != nil {
			if k, ok := r.tags.get(tag); ok {
				bound = st.digestOf(k)
			}
		}
		return []metalog.Op{{Key: pinKey(repo, tag), Value: []byte(bound)}}, nil
	}, nil)
	return bound, err
}

// Pinned returns the digest tag of repo is bound to, if it is.
func (s *pins) Pinned(repo, tag string) (digest.Digest, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, ok := s.st.pins[pinKey(repo, tag)]
	return d, ok
}
