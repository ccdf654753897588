// Package auth authenticates and authorizes registry API requests: HTTP
// Basic against an htpasswd file, Bearer tokens from an external token
// server (registry:2's auth.token) or from atoll's own token endpoint, and
// per-repository access rules. It knows nothing of the cluster; the API
// imports it, never the reverse.
package auth

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"log/slog"
	"time"
)

// TokenPath is where the built-in token endpoint is expected to be mounted;
// the default realm of the built-in token mode points there.
const TokenPath = "/auth/token"

// Config is registry:2's auth: section plus atoll's built-in token server
// and access rules. Modes are enabled by their settings: htpasswd by its
// path, the external token server by its realm, the built-in one by
// enabled. Basic credentials are accepted whenever htpasswd is set; the
// challenge is Bearer when either token mode is on, else Basic.
type Config struct {
	// Htpasswd is registry:2's auth.htpasswd.
	Htpasswd HtpasswdConfig `yaml:"htpasswd"`
	// Token is registry:2's auth.token: an external token server.
	Token TokenConfig `yaml:"token"`
	// BuiltinToken is atoll's own token server.
	BuiltinToken BuiltinTokenConfig `yaml:"builtintoken"`
	// Access says who may do what.
	Access AccessConfig `yaml:"access"`
}

// HtpasswdConfig is registry:2's auth.htpasswd.
type HtpasswdConfig struct {
	// Realm is the Basic challenge's realm. Default "atoll".
	Realm string `yaml:"realm"`
	// Path is the htpasswd file of bcrypt entries, reread when it changes.
	// Default "" (htpasswd off).
	Path string `yaml:"path"`
}

// TokenConfig is registry:2's auth.token: Bearer tokens issued by an
// external server (docker_auth, Harbor, GitLab...).
type TokenConfig struct {
	// Realm is the token server's URL, sent in the challenge. Default ""
	// (external token mode off).
	Realm string `yaml:"realm"`
	// Service is the audience tokens must carry. Required with Realm.
	Service string `yaml:"service"`
	// Issuer is the iss tokens must carry. Required with Realm.
	Issuer string `yaml:"issuer"`
	// RootCertBundle is a PEM file of the certificates whose keys sign
	// tokens (by x5c chain or kid). Required with Realm.
	RootCertBundle string `yaml:"rootcertbundle"`
	// AutoRedirect makes the challenge's realm this registry's own
	// scheme and host with AutoRedirectPath. Default false.
	AutoRedirect bool `yaml:"autoredirect"`
	// AutoRedirectPath is the realm's path under AutoRedirect. Default
	// "/auth/token".
	AutoRedirectPath string `yaml:"autoredirectpath"`
}

// BuiltinTokenConfig is atoll's own token server (see TokenHandler). It
// authenticates with the htpasswd file and grants what Access allows.
type BuiltinTokenConfig struct {
	// Enabled turns the built-in token mode on. Default false.
	Enabled bool `yaml:"enabled"`
	// Realm is the token endpoint's URL in the challenge. Default: the
	// request's own scheme and host with TokenPath.
	Realm string `yaml:"realm"`
	// Service is the audience of issued tokens. Default "atoll".
	Service string `yaml:"service"`
	// Issuer is the iss of issued tokens. Default "atoll".
	Issuer string `yaml:"issuer"`
	// Expiry is a token's lifetime. Default 5m.
	Expiry time.Duration `yaml:"expiry"`
	// KeyPath is a PEM ECDSA P-256 private key (SEC 1 or PKCS #8) to sign
	// with. Default "": derived from Deps.KeySeed when set, else generated
	// at start (tokens then do not survive a restart).
	KeyPath string `yaml:"keypath"`
}

// AccessConfig grants rights. Rules only add rights; with none, every
// authenticated user may do everything (registry:2's htpasswd behaviour).
type AccessConfig struct {
	// AnonymousPull lets requests without credentials pull any
	// repository. Default false.
	AnonymousPull bool `yaml:"anonymouspull"`
	// Groups maps a group name to its users. Default none.
	Groups map[string][]string `yaml:"groups"`
	// Rules grant actions on repositories. Default none.
	Rules []Rule `yaml:"rules"`
}

// Rule grants Actions on Repositories to Users and members of Groups.
type Rule struct {
	// Repositories are name patterns: path.Match per "/" segment, and a
	// "**" segment for any number of segments ("team/**" is everything
	// under team/). Not needed by a rule whose only action is admin.
	Repositories []string `yaml:"repositories"`
	// Users the rule applies to; "*" is every authenticated user.
	Users []string `yaml:"users"`
	// Groups the rule applies to, names from AccessConfig.Groups.
	Groups []string `yaml:"groups"`
	// Actions granted: pull, push, delete, or "*" for all three; admin
	// (ActionAdmin) to operate the registry (/_atoll/v1: status, gc).
	Actions []string `yaml:"actions"`
}

// Enabled reports whether any authentication mode is configured.
func (c Config) Enabled() bool {
	return c.Htpasswd.Path != "" || c.Token.Realm != "" || c.BuiltinToken.Enabled
}

func (c *Config) applyDefaults() {
	if c.Htpasswd.Realm == "" {
		c.Htpasswd.Realm = "atoll"
	}
	if c.Token.AutoRedirectPath == "" {
		c.Token.AutoRedirectPath = TokenPath
	}
	b := &c.BuiltinToken
	if b.Service == "" {
		b.Service = "atoll"
	}
	if b.Issuer == "" {
		b.Issuer = "atoll"
	}
	if b.Expiry <= 0 {
		b.Expiry = 5 * time.Minute
	}
}

// Identity is who made a request.
type Identity struct {
	// User is the authenticated user name; empty when Anonymous.
	User string
	// Groups are the user's groups from AccessConfig.Groups.
	Groups []string
	// Anonymous is set for requests without credentials.
	Anonymous bool
}

type identityKey struct{}

// ContextWithIdentity returns ctx carrying id. Wrap neither authenticates
// nor authorizes a request whose context already carries an identity: it
// is for traffic that a trusted party (another cluster member) has already
// checked.
func ContextWithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the identity Wrap stored in ctx.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// Deps are what an Authenticator needs besides its Config.
type Deps struct {
	// Logger receives reload failures and denied logins. Optional.
	Logger *slog.Logger
	// KeySeed, when set and BuiltinToken.KeyPath is not, derives the
	// built-in signing key, so that every member sharing the seed (the
	// cluster secret) signs and accepts the same tokens. Optional.
	KeySeed []byte
}

// Authenticator checks requests against a Config: it authenticates them
// and asks its accessRules (rules.go) what they may do; refusals
// (middleware.go) answers those it turns away and tokenServer (token.go)
// is the built-in token endpoint. Its methods may be called concurrently.
// A nil *Authenticator allows everything.
type Authenticator struct {
	cfg      Config
	log      *slog.Logger
	users    *htpasswdFile // nil without htpasswd
	access   *accessRules
	refuse   *refusals
	tokens   *tokenServer      // nil without the built-in token mode
	key      *ecdsa.PrivateKey // built-in signing key; nil when off
	keyID    string
	external *trustedKeys // nil without the external token mode
	now      func() time.Time
}

// New checks cfg and loads the files it names.
func New(cfg Config, deps Deps) (*Authenticator, error) {
	cfg.applyDefaults()
	a := &Authenticator{cfg: cfg, log: deps.Logger, now: time.Now}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if !cfg.Enabled() {
		return nil, errors.New("auth: no mode configured (htpasswd.path, token.realm or builtintoken.enabled)")
	}
	var err error
	if cfg.Htpasswd.Path != "" {
		if a.users, err = openHtpasswd(cfg.Htpasswd.Path, a.log); err != nil {
			return nil, err
		}
	}
	a.refuse = &refusals{log: a.log, basicRealm: cfg.Htpasswd.Realm, builtin: cfg.BuiltinToken}
	if t := cfg.Token; t.Realm != "" {
		if t.Service == "" || t.Issuer == "" || t.RootCertBundle == "" {
			return nil, errors.New("auth: token needs service, issuer and rootcertbundle")
		}
		if a.external, err = loadTrustedKeys(t.RootCertBundle); err != nil {
			return nil, err
		}
		a.refuse.external = &t
	}
	if cfg.BuiltinToken.Enabled {
		if a.key, err = signingKey(cfg.BuiltinToken.KeyPath, deps.KeySeed); err != nil {
			return nil, err
		}
		if a.keyID, err = thumbprint(&a.key.PublicKey); err != nil {
			return nil, err
		}
	}
	if a.access, err = newAccessRules(cfg.Access); err != nil {
		return nil, err
	}
	if a.key != nil {
		a.tokens = &tokenServer{
			cfg: cfg.BuiltinToken, basicRealm: cfg.Htpasswd.Realm, key: a.key, keyID: a.keyID,
			users: a.users, access: a.access, refuse: a.refuse, log: a.log,
		}
	}
	a.refuse.bearer = a.tokenMode()
	return a, nil
}
