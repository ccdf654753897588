package replication

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Directions of a rule.
const (
	Push = "push" // pushes and deletes here are sent to the remote
	Pull = "pull" // the remote's repositories are copied here
)

// Config is the replication section: rules that mirror repositories to and
// from other registries. The zero value replicates nothing.
type Config struct {
	// Rules are the replication rules: the config file's replication:
	// list. Default: none.
	Rules []Rule `yaml:"replication"`
}

// Rule mirrors the repositories matching Repositories between this
// registry and Remote, in Direction.
type Rule struct {
	// Name names the rule in logs, metrics and the queue file; unique.
	// Default: "<direction>-<remote host>".
	Name string `yaml:"name"`
	// Remote is the other registry.
	Remote Remote `yaml:"remote"`
	// Direction is "push" (each manifest push and delete here is queued on
	// disk and sent to the remote, retried until it goes through) or
	// "pull" (the remote's matching repositories are copied here every
	// Interval). Required.
	Direction string `yaml:"direction"`
	// Repositories are globs of repository names ("team/**", "app",
	// "library/*"): * matches within a path segment, ** across segments.
	// Default: ["**"], every repository.
	Repositories []string `yaml:"repositories"`
	// Interval is how often a pull rule copies what changed on the remote,
	// and how often a push rule checks that the remote has every local tag
	// (so pushes a member that died never sent still arrive). Default 5m.
	Interval time.Duration `yaml:"interval"`
}

// Remote is a registry replication talks to.
type Remote struct {
	// URL is the registry's base URL, http(s)://host[:port]. Required.
	URL string `yaml:"url"`
	// Username and Password authenticate (Basic, or to the registry's
	// token server). Default: anonymous.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// TLS configures HTTPS to the remote.
	TLS RemoteTLS `yaml:"tls"`
}

// RemoteTLS is how the remote's certificate is checked.
type RemoteTLS struct {
	// CA is a PEM file of CAs to trust besides the system's. Default none.
	CA string `yaml:"ca"`
	// Insecure skips verification of the remote's certificate. Default
	// false.
	Insecure bool `yaml:"insecure"`
}

// DefaultInterval is a rule's Interval when unset.
const DefaultInterval = 5 * time.Minute

// Enabled reports whether any rule is configured.
func (c Config) Enabled() bool { return len(c.Rules) > 0 }

// rule is a validated Rule.
type rule struct {
	Rule
	host     string // the remote's host[:port]
	insecure bool   // plain HTTP
	globs    []*regexp.Regexp
}

// matches reports whether repo is one of the rule's repositories.
func (r *rule) matches(repo string) bool {
	for _, g := range r.globs {
		if g.MatchString(repo) {
			return true
		}
	}
	return false
}

// compile validates c and returns its rules.
func (c Config) compile() ([]*rule, error) {
	var out []*rule
	seen := map[string]bool{}
	for i, r := range c.Rules {
		field := fmt.Sprintf("replication.rules[%d]", i)
		u, err := url.Parse(strings.TrimSuffix(r.Remote.URL, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.User != nil {
			return nil, fmt.Errorf("%s: remote.url %q: want http(s)://host[:port], credentials in username and password", field, r.Remote.URL)
		}
		if r.Direction != Push && r.Direction != Pull {
			return nil, fmt.Errorf("%s: direction %q: want %s or %s", field, r.Direction, Push, Pull)
		}
		if r.Name == "" {
			r.Name = r.Direction + "-" + u.Host
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("%s: name %q used twice", field, r.Name)
		}
		seen[r.Name] = true
		if r.Interval <= 0 {
			r.Interval = DefaultInterval
		}
		if len(r.Repositories) == 0 {
			r.Repositories = []string{"**"}
		}
		cr := &rule{Rule: r, host: u.Host, insecure: u.Scheme == "http"}
		for _, g := range r.Repositories {
			re, err := globRE(g)
			if err != nil {
				return nil, fmt.Errorf("%s: repositories %q: %w", field, g, err)
			}
			cr.globs = append(cr.globs, re)
		}
		out = append(out, cr)
	}
	return out, nil
}

// globRE compiles a repository glob: ** matches any run of characters,
// * any run without a slash, ? one character other than a slash.
func globRE(g string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(g); i++ {
		switch {
		case strings.HasPrefix(g[i:], "**"):
			b.WriteString(".*")
			i++
		case g[i] == '*':
			b.WriteString("[^/]*")
		case g[i] == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(g[i : i+1]))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}
