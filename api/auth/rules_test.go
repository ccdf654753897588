package auth

import (
	"strings"
	"testing"
)

func TestMatchSegments(t *testing.T) {
	for _, tt := range []struct {
		pattern, name string
		want          bool
	}{
		{"foo", "foo", true},
		{"foo", "foo/bar", false},
		{"*", "foo", true},
		{"*", "foo/bar", false},
		{"team/*", "team/app", true},
		{"team/*", "team/app/x", false},
		{"team/**", "team/app", true},
		{"team/**", "team/app/x/y", true},
		{"team/**", "team", false},
		{"team/**", "other/app", false},
		{"**", "a/b/c", true},
		{"**/cache", "cache", true},
		{"**/cache", "a/b/cache", true},
		{"**/cache", "a/b/cache/x", false},
		{"a/**/z", "a/z", true},
		{"a/**/z", "a/b/c/z", true},
		{"a/**/z", "a/b/c", false},
		{"a/**/**/z", "a/b/z", true},
		{"lib-?", "lib-a", true},
		{"lib-[0-9]*", "lib-1x", true},
		{"lib-[0-9]*", "lib-x", false},
		{"**/**/**/**/**/x", strings.Repeat("a/", 120) + "y", false}, // stays fast
	} {
		got := matchSegments(strings.Split(tt.pattern, "/"), strings.Split(tt.name, "/"))
		if got != tt.want {
			t.Errorf("match(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestAllowed(t *testing.T) {
	access := AccessConfig{
		AnonymousPull: true,
		Groups:        map[string][]string{"dev": {"alice", "bob"}, "ops": {"carol"}},
		Rules: []Rule{
			{Repositories: []string{"team/**"}, Groups: []string{"dev"}, Actions: []string{"pull", "push"}},
			{Repositories: []string{"**"}, Groups: []string{"ops"}, Actions: []string{"*"}},
			{Repositories: []string{"alice/*"}, Users: []string{"alice"}, Actions: []string{"pull", "push", "delete"}},
			{Repositories: []string{"public/*"}, Users: []string{"*"}, Actions: []string{"pull"}},
		},
	}
	a, _ := newAuth(t, Config{Htpasswd: HtpasswdConfig{Path: writeHtpasswd(t, "", nil)}, Access: access})
	noRules, _ := newAuth(t, Config{Htpasswd: HtpasswdConfig{Path: writeHtpasswd(t, "", nil)}})
	anon := Identity{Anonymous: true}
	for _, tt := range []struct {
		a            *Authenticator
		user         string
		repo, action string
		want         bool
	}{
		{a, "alice", "team/app", "pull", true},
		{a, "alice", "team/app/sub", "push", true},
		{a, "alice", "team/app", "delete", false},
		{a, "alice", "team", "pull", false},
		{a, "alice", "alice/x", "delete", true},
		{a, "alice", "alice/x", "*", true},
		{a, "bob", "alice/x", "pull", false},
		{a, "bob", "public/x", "pull", true},
		{a, "bob", "public/x", "push", false},
		{a, "dave", "public/x", "pull", true}, // "*": any authenticated user
		{a, "dave", "team/app", "pull", false},
		{a, "carol", "anything/at/all", "delete", true},
		{a, "carol", "x", "*", true},
		{a, "", "team/app", "pull", true}, // anonymous pull
		{a, "", "team/app", "push", false},
		{a, "", "x", "*", false},
		{noRules, "dave", "x/y", "delete", true},
		{noRules, "dave", "x/y", "*", true},
		{noRules, "", "x/y", "pull", false}, // no anonymous pull there
		{nil, "", "x", "delete", true},      // a nil Authenticator allows all
	} {
		id := anon
		if tt.user != "" {
			id = tt.a.access.identity(tt.user)
		}
		if got := tt.a.Allowed(id, tt.repo, tt.action); got != tt.want {
			t.Errorf("Allowed(%q, %q, %q) = %v, want %v", tt.user, tt.repo, tt.action, got, tt.want)
		}
	}
}

func TestBadConfig(t *testing.T) {
	path := writeHtpasswd(t, "", nil)
	for name, cfg := range map[string]Config{
		"no mode":          {},
		"missing htpasswd": {Htpasswd: HtpasswdConfig{Path: path + ".missing"}},
		"bad pattern": {Htpasswd: HtpasswdConfig{Path: path}, Access: AccessConfig{Rules: []Rule{
			{Repositories: []string{"a/["}, Users: []string{"x"}, Actions: []string{"pull"}}}}},
		"empty segment": {Htpasswd: HtpasswdConfig{Path: path}, Access: AccessConfig{Rules: []Rule{
			{Repositories: []string{"a//b"}, Users: []string{"x"}, Actions: []string{"pull"}}}}},
		"bad action": {Htpasswd: HtpasswdConfig{Path: path}, Access: AccessConfig{Rules: []Rule{
			{Repositories: []string{"a"}, Users: []string{"x"}, Actions: []string{"write"}}}}},
		"nobody": {Htpasswd: HtpasswdConfig{Path: path}, Access: AccessConfig{Rules: []Rule{
			{Repositories: []string{"a"}, Actions: []string{"pull"}}}}},
		"token without bundle": {Token: TokenConfig{Realm: "https://auth", Service: "s", Issuer: "i"}},
		"missing key":          {BuiltinToken: BuiltinTokenConfig{Enabled: true, KeyPath: path + ".key"}},
		"key not PEM":          {BuiltinToken: BuiltinTokenConfig{Enabled: true, KeyPath: path}},
	} {
		if _, err := New(cfg, Deps{}); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}
