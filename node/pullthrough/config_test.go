package pullthrough

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestMatch(t *testing.T) {
	cfg := Config{
		Proxy: Upstream{RemoteURL: "https://mirror.example"},
		Upstreams: []Upstream{
			{Prefix: "dockerhub", RemoteURL: "https://docker.io"},
			{Prefix: "ghcr/", RemoteURL: "https://ghcr.io/", TTL: time.Hour},
			{Prefix: "ghcr/team/", RemoteURL: "http://team.example:5000"},
		},
	}
	c, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		repo, base, up string
		ttl            time.Duration
	}{
		{"dockerhub/library/alpine", "https://registry-1.docker.io", "library/alpine", DefaultTTL},
		{"dockerhub/alpine", "https://registry-1.docker.io", "library/alpine", DefaultTTL},
		{"dockerhub/bitnami/redis", "https://registry-1.docker.io", "bitnami/redis", DefaultTTL},
		{"ghcr/org/app", "https://ghcr.io", "org/app", time.Hour},
		{"ghcr/team/app", "http://team.example:5000", "app", DefaultTTL},
		{"ghcr", "https://mirror.example", "ghcr", DefaultTTL},
		{"ghcrx/app", "https://mirror.example", "ghcrx/app", DefaultTTL},
	} {
		rt, up, ok := c.match(tc.repo)
		if !ok || rt.client.base != tc.base || up != tc.up || rt.ttl != tc.ttl {
			t.Errorf("match(%q): ok %v, upstream %s, name %q, ttl %v; want %s, %q, %v", tc.repo, ok, rt.client.base, up, rt.ttl, tc.base, tc.up, tc.ttl)
		}
	}

	local, err := New(Config{Upstreams: cfg.Upstreams}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	for repo, want := range map[string]bool{"dockerhub/x": true, "dockerhub": false, "mine/app": false} {
		if got := local.Proxied(repo); got != want {
			t.Errorf("without proxy: Proxied(%q) = %v, want %v", repo, got, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Proxy: Upstream{RemoteURL: "ftp://x"}}, "proxy: remoteurl"},
		{Config{Proxy: Upstream{RemoteURL: "https://u:p@x"}}, "credentials in username"},
		{Config{Proxy: Upstream{RemoteURL: "https://x", Prefix: "a/"}}, "proxy.prefix"},
		{Config{Upstreams: []Upstream{{RemoteURL: "https://x"}}}, "upstreams[0]: prefix"},
		{Config{Upstreams: []Upstream{{Prefix: "Bad/", RemoteURL: "https://x"}}}, "not a repository name"},
		{Config{Upstreams: []Upstream{{Prefix: "a", RemoteURL: "https://x"}, {Prefix: "a/", RemoteURL: "https://y"}}}, "twice"},
		{Config{Upstreams: []Upstream{{Prefix: "a"}}}, "upstreams[0]: remoteurl"},
	} {
		_, err := New(tc.cfg, Deps{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
	if (Config{}).Enabled() {
		t.Error("the zero Config is enabled")
	}
}

// atoll's upstreams list reads from YAML; registry:2's proxy section is
// cmd/atoll's to map (its ttl is not Upstream.TTL), so it is not decoded.
func TestConfigYAML(t *testing.T) {
	const doc = `
proxy:
  remoteurl: https://registry-1.docker.io
upstreams:
  - prefix: ghcr/
    remoteurl: https://ghcr.io
    ttl: 1h
`
	var cfg Config
	if err := yaml.Unmarshal([]byte(doc), &cfg); err != nil {
		t.Fatal(err)
	}
	want := Upstream{Prefix: "ghcr/", RemoteURL: "https://ghcr.io", TTL: time.Hour}
	if cfg.Proxy != (Upstream{}) || len(cfg.Upstreams) != 1 || cfg.Upstreams[0] != want || !cfg.Enabled() {
		t.Errorf("parsed %+v, want only the upstream %+v", cfg, want)
	}
}
