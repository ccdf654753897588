// Package policy holds the operator's rules on writes: quotas on the bytes
// a set of repositories holds, and tags that may never move once pushed.
// Rules name repositories with the patterns retention uses (match.go).
// The rules are cluster-wide because their inputs are: usage is computed
// from replicated metadata, the admissions of each quota are decided by
// one member, which counts the writes in flight (reserve.go), and the
// first push of an immutable tag is decided by one member (see Pinner).
package policy

import (
	"fmt"
	"path"
	"strings"
)

// Match reports whether repository repo matches one of patterns: "**"
// matches every repository, "team/**" everything under team/, and any
// other pattern is a path.Match glob ("team/*", "app").
func Match(patterns []string, repo string) bool {
	for _, pat := range patterns {
		if pat == "**" {
			return true
		}
		if prefix, ok := strings.CutSuffix(pat, "/**"); ok && strings.HasPrefix(repo, prefix+"/") {
			return true
		}
		if ok, _ := path.Match(pat, repo); ok {
			return true
		}
	}
	return false
}

// validPatterns checks that every pattern is a well-formed glob.
func validPatterns(patterns []string) error {
	if len(patterns) == 0 {
		return fmt.Errorf("no repositories")
	}
	for _, pat := range patterns {
		if _, err := path.Match(strings.TrimSuffix(pat, "/**"), ""); err != nil {
			return fmt.Errorf("repository pattern %q: %w", pat, err)
		}
	}
	return nil
}
