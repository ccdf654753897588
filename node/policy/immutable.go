package policy

import (
	"context"
	"fmt"
	"regexp"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
)

// ImmutableRule makes the tags it matches immutable: once such a tag
// exists it points at the same manifest for ever. Pushing that digest
// again is allowed; moving or deleting the tag, or deleting its manifest,
// is refused.
type ImmutableRule struct {
	// Repositories are patterns (see Match). Required.
	Repositories []string `yaml:"repositories"`
	// Tags are regular expressions; a tag matching any is immutable.
	// Required.
	Tags []string `yaml:"tags"`
}

// Immutable is the compiled rules.
type Immutable []immutableRule

type immutableRule struct {
	repos []string
	tags  []*regexp.Regexp
}

// CompileImmutable checks the rules.
func CompileImmutable(rules []ImmutableRule) (Immutable, error) {
	var out Immutable
	for i, r := range rules {
		if err := validPatterns(r.Repositories); err != nil {
			return nil, fmt.Errorf("immutable rule %d: %w", i, err)
		}
		if len(r.Tags) == 0 {
			return nil, fmt.Errorf("immutable rule %d: no tags", i)
		}
		c := immutableRule{repos: r.Repositories}
		for _, expr := range r.Tags {
			re, err := regexp.Compile(expr)
			if err != nil {
				return nil, fmt.Errorf("immutable rule %d: tag %q: %w", i, expr, err)
			}
			c.tags = append(c.tags, re)
		}
		out = append(out, c)
	}
	return out, nil
}

// Covers reports whether tag of repo is immutable.
func (im Immutable) Covers(repo, tag string) bool {
	for _, r := range im {
		if !Match(r.repos, repo) {
			continue
		}
		for _, re := range r.tags {
			if re.MatchString(tag) {
				return true
			}
		}
	}
	return false
}

// Refused is the error for a write that would move or delete tag of repo,
// which points at d.
func Refused(repo, tag string, d digest.Digest) error {
	return fmt.Errorf("%s:%s points at %s and %w", repo, tag, d, api.ErrTagImmutable)
}

// Pins is the part of the metadata that binds immutable tags.
type Pins interface {
	// Pin binds tag of repo to the digest the tag points at if it exists,
	// else to d, unless it is bound already, in one write applied here
	// before it returns and then replicated; it returns the digest the
	// tag is bound to.
	Pin(ctx context.Context, repo, tag string, d digest.Digest) (digest.Digest, error)
}

// Pinner decides the first push of immutable tags on the member the
// cluster chose for them.
//
// Invariant: an immutable tag is bound to one digest, once. Every member
// asks the same member, the one the ring names for the tag's key, before
// it stores a tag that neither its own tags nor its pins bind already, and
// stores it only if the answer is its digest. That member decides by a
// compare-and-set on its own metadata (Pins.Pin runs under the store's
// write lock and is applied locally before it returns), so of concurrent
// first pushes exactly one digest is bound and every later claim reads
// it. The binding is replicated like any metadata, so when the ring moves
// the tag to another member that member finds it, once replication has
// reached it; a ring change during a race is the one window this leaves.
type Pinner struct {
	pins Pins
}

// NewPinner returns a pinner over pins.
func NewPinner(pins Pins) *Pinner { return &Pinner{pins: pins} }

// Claim binds tag of repo to d if it is not bound, and returns the digest
// it is bound to: d when the push may go on.
func (p *Pinner) Claim(ctx context.Context, repo, tag string, d digest.Digest) (digest.Digest, error) {
	bound, err := p.pins.Pin(ctx, repo, tag, d)
	if err != nil {
		return "", fmt.Errorf("bind immutable tag %s:%s: %w", repo, tag, err)
	}
	return bound, nil
}

// TagKey is the digest the ring places an immutable tag's decision by.
func TagKey(repo, tag string) digest.Digest { return digest.FromString(repo + ":" + tag) }
