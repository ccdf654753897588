package auth

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// The actions of the distribution spec's token scopes.
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
	// ActionAll stands for all three.
	ActionAll = "*"
)

// rule is a compiled Rule.
type rule struct {
	patterns [][]string // split on "/"
	users    []string
	groups   []string
	actions  []string
}

func compileRule(r Rule) (rule, error) {
	var c rule
	adminOnly := len(r.Actions) > 0 && !slices.ContainsFunc(r.Actions, func(a string) bool { return a != ActionAdmin })
	if (len(r.Repositories) == 0 && !adminOnly) || len(r.Actions) == 0 || len(r.Users)+len(r.Groups) == 0 {
		return c, fmt.Errorf("needs repositories (unless its only action is admin), actions, and users or groups")
	}
	for _, p := range r.Repositories {
		segs := strings.Split(p, "/")
		for _, s := range segs {
			if _, err := path.Match(s, ""); err != nil || s == "" {
				return c, fmt.Errorf("bad repository pattern %q", p)
			}
		}
		c.patterns = append(c.patterns, segs)
	}
	for _, act := range r.Actions {
		switch act {
		case ActionPull, ActionPush, ActionDelete, ActionAll, ActionAdmin:
		default:
			return c, fmt.Errorf("unknown action %q (pull, push, delete, * or admin)", act)
		}
	}
	c.users, c.groups, c.actions = r.Users, r.Groups, r.Actions
	return c, nil
}

// Allowed reports whether id may take action (pull, push, delete, or "*"
// for all three) on repository repo. Anonymous identities may pull when
// AnonymousPull is set and do nothing else; with no rules configured any
// authenticated identity may do everything. The API filters the catalog
// with Allowed(id, repo, "pull").
func (a *Authenticator) Allowed(id Identity, repo, action string) bool {
	if a == nil {
		return true
	}
	return a.access.allowed(id, repo, action)
}

// accessRules are AccessConfig compiled: who may do what. It is read-only
// once built and may be used concurrently.
type accessRules struct {
	rules         []rule
	groups        map[string][]string // user -> groups
	anonymousPull bool
}

func newAccessRules(c AccessConfig) (*accessRules, error) {
	ar := &accessRules{groups: map[string][]string{}, anonymousPull: c.AnonymousPull}
	for group, users := range c.Groups {
		for _, u := range users {
			ar.groups[u] = append(ar.groups[u], group)
		}
	}
	for i, r := range c.Rules {
		cr, err := compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("auth: access rule %d: %w", i, err)
		}
		ar.rules = append(ar.rules, cr)
	}
	return ar, nil
}

// identity is the Identity of an authenticated user ("": anonymous).
func (ar *accessRules) identity(user string) Identity {
	if user == "" {
		return Identity{Anonymous: true}
	}
	return Identity{User: user, Groups: ar.groups[user]}
}

// allowed is Authenticator.Allowed.
func (ar *accessRules) allowed(id Identity, repo, action string) bool {
	if action == ActionAll {
		return ar.allowed(id, repo, ActionPull) && ar.allowed(id, repo, ActionPush) && ar.allowed(id, repo, ActionDelete)
	}
	if id.Anonymous {
		if action != ActionPull {
			return false
		}
		if ar.anonymousPull {
			return true
		}
		for _, r := range ar.rules {
			if slices.Contains(r.users, AnonymousUser) && (slices.Contains(r.actions, ActionPull) || slices.Contains(r.actions, ActionAll)) && r.matches(repo) {
				return true
			}
		}
		return false
	}
	if id.User == "" {
		return false
	}
	if len(ar.rules) == 0 {
		return true
	}
	for _, r := range ar.rules {
		if r.appliesTo(id) && (slices.Contains(r.actions, action) || slices.Contains(r.actions, ActionAll)) && r.matches(repo) {
			return true
		}
	}
	return false
}

func (r rule) appliesTo(id Identity) bool {
	if slices.Contains(r.users, id.User) || slices.Contains(r.users, "*") {
		return true
	}
	for _, g := range id.Groups {
		if slices.Contains(r.groups, g) {
			return true
		}
	}
	return false
}

func (r rule) matches(repo string) bool {
	if repo == "" {
		return false
	}
	segs := strings.Split(repo, "/")
	for _, p := range r.patterns {
		if matchSegments(p, segs) {
			return true
		}
	}
	return false
}

// matchSegments matches a name's segments against a pattern's: path.Match
// per segment, and "**" for any number of segments (at least one when it
// ends the pattern, so "team/**" does not match "team" itself). It runs in
// O(len(pattern)*len(name)), whatever the number of "**".
func matchSegments(pattern, name []string) bool {
	// ok[j]: pattern[i:] matches name[j:], computed from i = len down to 0.
	ok := make([]bool, len(name)+1)
	ok[len(name)] = true
	for i := len(pattern) - 1; i >= 0; i-- {
		next := ok
		ok = make([]bool, len(name)+1)
		if pattern[i] == "**" {
			last := i == len(pattern)-1
			// ok[j] = next[j] (zero segments) || ok[j+1] (one more).
			for j := len(name); j >= 0; j-- {
				ok[j] = (next[j] && !last) || (j < len(name) && (ok[j+1] || (last && next[j+1])))
			}
			continue
		}
		for j := len(name) - 1; j >= 0; j-- {
			if next[j+1] {
				m, _ := path.Match(pattern[i], name[j])
				ok[j] = m
			}
		}
	}
	return ok[0]
}

// AnonymousUser, named in a rule's users, lets requests without credentials
// pull the rule's repositories (and nothing else): anonymous pull limited
// to, say, public/**.
const AnonymousUser = "anonymous"

// anonymousCatalog reports whether requests without credentials may list
// the catalog (filtered to what they may pull).
func (ar *accessRules) anonymousCatalog() bool {
	if ar.anonymousPull {
		return true
	}
	for _, r := range ar.rules {
		if slices.Contains(r.users, AnonymousUser) {
			return true
		}
	}
	return false
}
