package metadb

import (
	"context"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// A pin records the digest an immutable tag was first bound to. It is
// replicated metadata like a tag, but outside the repository: it makes no
// repository exist and survives the tag, so the binding is decided once.
// Only the member that decides a tag's first push writes its pin.

func pinKey(repo, tag string) string { return string(pinKeyBytes(repo, tag)) }

// Pin binds tag of repo to d, durably, unless it is bound already; it
// returns the digest the tag is bound to after the call.
func (s *Store) Pin(ctx context.Context, repo, tag string, d digest.Digest) (digest.Digest, error) {
	bound := d
	err := s.write(ctx, func(st *state) ([]storage.Op, error) {
		if cur, ok := st.pins[pinKey(repo, tag)]; ok {
			bound = cur
			return nil, nil
		}
		return []storage.Op{{Key: pinKey(repo, tag), Value: []byte(d)}}, nil
	}, nil)
	return bound, err
}

// Pinned returns the digest tag of repo is bound to, if it is.
func (s *Store) Pinned(repo, tag string) (digest.Digest, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, ok := s.st.pins[pinKey(repo, tag)]
	return d, ok
}
