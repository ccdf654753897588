package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
)

// Wrap returns next behind authentication and authorization:
//
//   - A request whose context already carries an Identity (see
//     ContextWithIdentity) passes untouched.
//   - Credentials are Basic (htpasswd) or Bearer (a built-in or external
//     token); none means anonymous. Bad credentials answer 401.
//   - The request needs the actions Scope names. An anonymous request
//     lacking them answers 401 with a challenge; a Basic user lacking them
//     403 DENIED; a token lacking them 401 with error="insufficient_scope"
//     (the client fetches a token for the scope), or 403 DENIED when the
//     rules would not grant the built-in token's user that scope anyway.
//   - A cross-repository mount whose source the client may not pull loses
//     its mount and from parameters: the API then opens a plain upload (a
//     202, as the spec allows), revealing nothing about the source.
//   - GET /v2/ always needs credentials, so clients learn the challenge;
//     GET /v2/_catalog needs any identity, anonymous ones only with
//     AnonymousPull: the API filters it with Allowed.
//
// Otherwise the Identity is stored in the request's context (FromContext)
// and next serves it. A nil *Authenticator returns next.
func (a *Authenticator) Wrap(next http.Handler) http.Handler {
	if a == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := FromContext(r.Context()); ok {
			next.ServeHTTP(w, r)
			return
		}
		scopes := Scopes(r)
		var target Access
		if len(scopes) > 0 {
			target = scopes[0]
		}
		id, tok, err := a.authenticate(r)
		if err != nil {
			a.log.Info("authentication failed", "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
			a.refuse.unauthorized(w, r, target, "invalid_token")
			return
		}
		if target.Repository == "" {
			if id.Anonymous && (r.URL.Path != "/v2/_catalog" || !a.access.anonymousCatalog()) {
				a.refuse.unauthorized(w, r, target, "")
				return
			}
		} else {
			for _, action := range target.Actions {
				if a.permits(id, tok, target.Repository, action) {
					continue
				}
				switch {
				case id.Anonymous:
					a.refuse.unauthorized(w, r, target, "")
				case tok == nil || (tok.builtin && !a.Allowed(id, target.Repository, action)):
					a.refuse.writeError(w, r, api.ErrDenied, "requested access to the resource is denied", target)
				default:
					a.refuse.unauthorized(w, r, target, "insufficient_scope")
				}
				return
			}
		}
		for _, s := range scopes[min(1, len(scopes)):] {
			for _, action := range s.Actions {
				if !a.permits(id, tok, s.Repository, action) {
					r = withoutMount(r)
				}
			}
		}
		next.ServeHTTP(w, r.WithContext(ContextWithIdentity(r.Context(), id)))
	})
}

// token is a verified Bearer token.
type token struct {
	*claims
	builtin bool // signed by the built-in key
}

// permits reports whether a request by id, with token tok if any, may take
// action on repo: a token's access claims decide, else the rules.
func (a *Authenticator) permits(id Identity, tok *token, repo, action string) bool {
	if tok != nil {
		return tok.grants(repo, action)
	}
	return a.Allowed(id, repo, action)
}

func withoutMount(r *http.Request) *http.Request {
	r = r.Clone(r.Context())
	q := r.URL.Query()
	q.Del("mount")
	q.Del("from")
	r.URL.RawQuery = q.Encode()
	return r
}

var errScheme = errors.New("unsupported authorization scheme")

// authenticate returns the request's identity, and its verified token for
// a Bearer request.
func (a *Authenticator) authenticate(r *http.Request) (Identity, *token, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return Identity{Anonymous: true}, nil, nil
	}
	scheme, cred, _ := strings.Cut(h, " ")
	switch {
	case strings.EqualFold(scheme, "basic") && a.users != nil:
		user, pass, ok := r.BasicAuth()
		if !ok || user == "" || !a.users.authenticate(user, pass, a.now()) {
			return Identity{}, nil, fmt.Errorf("bad credentials for %q", user)
		}
		return a.access.identity(user), nil, nil
	case strings.EqualFold(scheme, "bearer") && a.tokenMode():
		tok, err := a.verifyToken(strings.TrimSpace(cred))
		if err != nil {
			return Identity{}, nil, err
		}
		return a.access.identity(tok.Subject), tok, nil
	}
	return Identity{}, nil, errScheme
}

func (a *Authenticator) tokenMode() bool { return a.key != nil || a.external != nil }

// verifyToken checks a Bearer token's signature, issuer, audience and
// validity period. The built-in key is found by its kid; any other key
// must be the external token server's.
func (a *Authenticator) verifyToken(s string) (*token, error) {
	h, c, signed, sig, err := parseJWT(s)
	if err != nil {
		return nil, err
	}
	now := a.now()
	tok := token{claims: &c}
	switch {
	case a.key != nil && h.Kid == a.keyID && len(h.X5c) == 0:
		if err := verifySignature(h.Alg, &a.key.PublicKey, signed, sig); err != nil {
			return nil, err
		}
		tok.builtin = true
		return tok.checked(a.cfg.BuiltinToken.Issuer, a.cfg.BuiltinToken.Service, now)
	case a.external != nil:
		pub, err := a.external.key(h, now)
		if err != nil {
			return nil, err
		}
		if err := verifySignature(h.Alg, pub, signed, sig); err != nil {
			return nil, err
		}
		return tok.checked(a.cfg.Token.Issuer, a.cfg.Token.Service, now)
	}
	return nil, fmt.Errorf("unknown signing key %q", h.Kid)
}

// checked returns tok if its claims pass check.
func (tok token) checked(issuer, service string, now time.Time) (*token, error) {
	if err := tok.check(issuer, service, now); err != nil {
		return nil, err
	}
	return &tok, nil
}

// refusals answers the requests an Authenticator turns away: 401 with the
// challenge of the configured modes, or another OCI error. It is read-only
// and may be used concurrently.
type refusals struct {
	log        *slog.Logger
	basicRealm string
	bearer     bool         // a token mode is on: the challenge is Bearer
	external   *TokenConfig // the external token server; nil when off
	builtin    BuiltinTokenConfig
}

// unauthorized answers 401 UNAUTHORIZED with the challenge for target;
// bearerError, if any, is the challenge's error parameter.
func (f *refusals) unauthorized(w http.ResponseWriter, r *http.Request, target Access, bearerError string) {
	var scope string
	switch {
	case target.Repository != "":
		scope = "repository:" + target.Repository + ":" + strings.Join(target.Actions, ",")
	case r.URL.Path == "/v2/_catalog":
		scope = "registry:catalog:*"
	}
	f.challenge(w, r, scope, bearerError, target)
}

// challenge answers 401 UNAUTHORIZED with a challenge naming scope (in
// token modes; none when empty).
func (f *refusals) challenge(w http.ResponseWriter, r *http.Request, scope, bearerError string, target Access) {
	var ch string
	if f.bearer {
		realm, service := f.realm(r)
		ch = fmt.Sprintf(`Bearer realm=%s,service=%s`, quote(realm), quote(service))
		if scope != "" {
			ch += ",scope=" + quote(scope)
		}
		if bearerError != "" && strings.HasPrefix(strings.ToLower(r.Header.Get("Authorization")), "bearer ") {
			ch += ",error=" + quote(bearerError)
		}
	} else {
		ch = "Basic realm=" + quote(f.basicRealm)
	}
	w.Header().Set("WWW-Authenticate", ch)
	f.writeError(w, r, api.ErrUnauthorized, "authentication required", target)
}

// realm returns the token realm and service of the challenge: the external
// server's when configured, else the built-in one's.
func (f *refusals) realm(r *http.Request) (realm, service string) {
	if t := f.external; t != nil {
		if t.AutoRedirect {
			return baseURL(r) + t.AutoRedirectPath, t.Service
		}
		return t.Realm, t.Service
	}
	b := f.builtin
	if b.Realm != "" {
		return b.Realm, b.Service
	}
	return baseURL(r) + TokenPath, b.Service
}

// baseURL is the scheme and host the client used to reach us.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
		scheme = p
	}
	return scheme + "://" + r.Host
}

// quote makes s a quoted-string (RFC 9110 5.6.4).
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

type errorDetail struct {
	Type   string
	Name   string
	Action string
}

// writeError refuses r with kind (api.ErrUnauthorized, api.ErrDenied, ...)
// and message through the registry's one error table, with a detail entry
// per action of target.
func (f *refusals) writeError(w http.ResponseWriter, r *http.Request, kind error, message string, target Access) {
	ref := &api.Refusal{Err: kind, Message: message}
	if len(target.Actions) > 0 {
		var detail []errorDetail
		for _, act := range target.Actions {
			detail = append(detail, errorDetail{Type: "repository", Name: target.Repository, Action: act})
		}
		ref.Detail = detail
	}
	api.WriteError(f.log, w, r, ref)
}
