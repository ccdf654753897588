package pullthrough

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/atollhq/atoll/oci"
)

// Config is the pull-through cache: registry:2's proxy section and atoll's
// list of prefixed upstreams. The zero value proxies nothing: every
// repository is local.
type Config struct {
	// Proxy is registry:2's proxy: section. With a RemoteURL set, every
	// repository no Upstreams prefix claims is a cache of that registry
	// under the same name, and accepts no pushes, exactly like registry:2.
	// Its Prefix must be empty. Default: none. cmd/atoll maps it from
	// registry:2's section, whose keys differ (tagttl is its TTL).
	Proxy Upstream `yaml:"-"`
	// Upstreams are caches beside local repositories: a repository whose
	// name starts with an entry's Prefix is a cache of that entry's
	// registry; the longest prefix wins; any other repository is local and
	// accepts pushes. Default: none.
	Upstreams []Upstream `yaml:"upstreams"`
}

// Upstream is one registry that repositories cache.
type Upstream struct {
	// Prefix selects the repositories cached from this registry and is
	// removed to name them upstream: with "dockerhub/", repository
	// "dockerhub/library/alpine" is "library/alpine" upstream. A missing
	// trailing slash is added. Required in Upstreams; empty in Proxy.
	Prefix string `yaml:"prefix"`
	// RemoteURL is the upstream's base URL, e.g.
	// https://registry-1.docker.io (docker.io is read as that). Required.
	RemoteURL string `yaml:"remoteurl"`
	// Username and Password authenticate to the upstream: Basic, or to its
	// token server when it asks for a Bearer token. Default: anonymous.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// TTL is how long a cached tag is trusted before the upstream is asked
	// again where it points; a negative TTL asks on every pull. Manifests
	// and blobs are content-addressed and never go stale; garbage
	// collection removes them. Unlike registry:2, whose proxy.ttl (default
	// 168h) schedules the deletion of cached blobs. Default 5m.
	TTL time.Duration `yaml:"ttl"`
	// Library adds library/ to one-word repository names upstream, as
	// Docker Hub keeps its official images there ("alpine" is
	// "library/alpine"). Default: on for Docker Hub, off otherwise.
	Library *bool `yaml:"library"`
	// MaxWait is how long a pull that needs the upstream waits while the
	// upstream's rate limit holds (a 429, or RateLimit-Remaining: 0, until
	// its Retry-After); a longer limit answers 429 TOOMANYREQUESTS at once.
	// Negative: never wait. Default 10s.
	MaxWait time.Duration `yaml:"maxwait"`
}

// DefaultTTL is how long a cached tag is trusted when Upstream.TTL is 0.
const DefaultTTL = 5 * time.Minute

// Enabled reports whether any repository is a cache, so the binary can leave
// api.Deps.Upstream nil otherwise.
func (c Config) Enabled() bool { return c.Proxy.RemoteURL != "" || len(c.Upstreams) > 0 }

// route is one validated Upstream: repositories under prefix ("" for
// all) are caches of the registry client reaches, their tags trusted for ttl.
type route struct {
	prefix string
	ttl    time.Duration
	client *client
}

// routes validates cfg and returns its routes, longest prefix first, so
// the first match is the most specific and the proxy catch-all is last.
func (c Config) routes(m *metrics) ([]route, error) {
	var out []route
	seen := map[string]bool{}
	add := func(field string, u Upstream, prefix string) error {
		if seen[prefix] {
			return fmt.Errorf("%s: prefix %q configured twice", field, u.Prefix)
		}
		seen[prefix] = true
		r, err := newClient(u, m)
		if err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		ttl := u.TTL
		if ttl == 0 {
			ttl = DefaultTTL
		}
		out = append(out, route{prefix: prefix, ttl: ttl, client: r})
		return nil
	}
	if c.Proxy.Prefix != "" {
		return nil, fmt.Errorf("proxy.prefix %q: the proxy section caches every repository; use upstreams for a prefix", c.Proxy.Prefix)
	}
	if c.Proxy.RemoteURL != "" {
		if err := add("proxy", c.Proxy, ""); err != nil {
			return nil, err
		}
	}
	for i, u := range c.Upstreams {
		field := fmt.Sprintf("upstreams[%d]", i)
		prefix := strings.TrimSuffix(u.Prefix, "/")
		if !oci.ValidName(prefix) {
			return nil, fmt.Errorf("%s: prefix %q is not a repository name", field, u.Prefix)
		}
		if err := add(field, u, prefix+"/"); err != nil {
			return nil, err
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].prefix) > len(out[j].prefix) })
	return out, nil
}

// parseRemoteURL checks an upstream base URL and returns it without a
// trailing slash. Docker Hub's well-known names become its API host.
func parseRemoteURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(s, "/"))
	if err != nil {
		return nil, fmt.Errorf("remoteurl: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("remoteurl %q: want http(s)://host[:port], credentials in username and password", u.Redacted())
	}
	switch u.Host {
	case "docker.io", "index.docker.io":
		u.Host = dockerHubHost
	}
	return u, nil
}

// dockerHubHost serves Docker Hub's registry API. Its official images live
// under library/, which clients add implicitly.
const dockerHubHost = "registry-1.docker.io"
