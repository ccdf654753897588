package gc

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/oci"
	"github.com/atollhq/atoll/storage"
)

// RetentionPolicy prunes the tags and untagged manifests of the
// repositories it matches; garbage collection then frees their blobs. The
// first policy matching a repository applies.
type RetentionPolicy struct {
	// Repositories are patterns: path.Match globs ("team/*"), or a prefix
	// ending in "/**" for everything under it. Required.
	Repositories []string `yaml:"repositories"`
	// KeepLast keeps the N most recently pushed tags. Default 0: all.
	KeepLast int `yaml:"keeplast"`
	// KeepTags are regular expressions; matching tags are always kept.
	KeepTags []string `yaml:"keeptags"`
	// UntaggedAfter deletes manifests that no tag reaches (directly or
	// through an index) and that refer to no kept manifest, once they are
	// this old. Default 0: untagged manifests are kept.
	UntaggedAfter time.Duration `yaml:"untaggedafter"`
}

// retention is the compiled policies.
type retention []compiledPolicy

type compiledPolicy struct {
	RetentionPolicy
	keep []*regexp.Regexp
}

func compileRetention(ps []RetentionPolicy) (retention, error) {
	var out retention
	for i, p := range ps {
		if len(p.Repositories) == 0 {
			return nil, fmt.Errorf("retention policy %d: no repositories", i)
		}
		c := compiledPolicy{RetentionPolicy: p}
		for _, expr := range p.KeepTags {
			re, err := regexp.Compile(expr)
			if err != nil {
				return nil, fmt.Errorf("retention policy %d: keeptags %q: %w", i, expr, err)
			}
			c.keep = append(c.keep, re)
		}
		out = append(out, c)
	}
	return out, nil
}

func (r retention) policyFor(repo string) *compiledPolicy {
	for i := range r {
		for _, pat := range r[i].Repositories {
			if prefix, ok := strings.CutSuffix(pat, "/**"); ok && strings.HasPrefix(repo, prefix+"/") {
				return &r[i]
			}
			if ok, _ := path.Match(pat, repo); ok {
				return &r[i]
			}
		}
	}
	return nil
}

// pruned counts what retention deleted (or would delete, in a dry run).
type pruned struct{ tags, manifests int }

// applyRetention runs the policies over every repository.
func (c *Collector) applyRetention(ctx context.Context, dryRun bool) (pruned, error) {
	var total pruned
	for _, repo := range c.deps.Meta.Repositories("", 0) {
		p := c.retention.policyFor(repo)
		if p == nil {
			continue
		}
		got, err := c.retain(ctx, repo, p, dryRun)
		total.tags += got.tags
		total.manifests += got.manifests
		if err != nil {
			return total, fmt.Errorf("retention in %s: %w", repo, err)
		}
	}
	return total, nil
}

func (c *Collector) retain(ctx context.Context, repo string, p *compiledPolicy, dryRun bool) (pruned, error) {
	var out pruned
	tags, err := c.deps.Meta.Tags(repo, "", 0)
	if err != nil {
		return out, nil // emptied meanwhile
	}
	written := map[string]time.Time{}
	for _, t := range tags {
		written[t], _ = c.deps.Meta.Written(repo, t, "")
	}
	slices.SortFunc(tags, func(a, b string) int { return written[b].Compare(written[a]) })
	var kept []string
	for i, t := range tags {
		if p.KeepLast == 0 || i < p.KeepLast || slices.ContainsFunc(p.keep, func(re *regexp.Regexp) bool { return re.MatchString(t) }) ||
			c.deps.Immutable(repo, t) { // never deleted, so never pruned
			kept = append(kept, t)
			continue
		}
		out.tags++
		if !dryRun {
			if err := c.deps.Meta.DeleteTag(ctx, repo, t); err != nil && !errors.Is(err, storage.ErrTagUnknown) {
				return out, err
			}
		}
	}
	if p.UntaggedAfter <= 0 {
		return out, nil
	}
	reached := c.reachable(repo, kept)
	cutoff := time.Now().Add(-p.UntaggedAfter)
	var doomed []digest.Digest
	c.deps.Meta.EachManifest(func(r string, m *storage.Manifest) bool {
		d := m.Descriptor.Digest
		if r != repo || reached[d] || (m.Subject != "" && reached[m.Subject]) {
			return true
		}
		doomed = append(doomed, d)
		return true
	})
	for _, d := range doomed {
		if at, ok := c.deps.Meta.Written(repo, "", d); !ok || at.After(cutoff) {
			continue
		}
		out.manifests++
		if !dryRun {
			if err := c.deps.Meta.DeleteManifest(ctx, repo, d); err != nil && !errors.Is(err, storage.ErrManifestUnknown) {
				return out, err
			}
		}
	}
	return out, nil
}

// reachable returns the manifests of repo the tags reach, through indexes.
func (c *Collector) reachable(repo string, tags []string) map[digest.Digest]bool {
	seen := map[digest.Digest]bool{}
	var queue []digest.Digest
	for _, t := range tags {
		if d, err := c.deps.Meta.Tag(repo, t); err == nil {
			queue = append(queue, d)
		}
	}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if seen[d] {
			continue
		}
		seen[d] = true
		m, err := c.deps.Meta.Manifest(repo, d)
		if err != nil {
			continue
		}
		if parsed, err := oci.Parse(m.Descriptor.MediaType, m.Content); err == nil {
			for _, c := range parsed.Manifests {
				queue = append(queue, c.Digest)
			}
		}
	}
	return seen
}
