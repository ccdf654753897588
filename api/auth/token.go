package auth

import (
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/oci"
)

// TokenHandler is the built-in token server (mount it at TokenPath). It
// implements the Docker token authentication spec:
//
//   - GET ?service=&scope=repository:<name>:<actions>&scope=... with Basic
//     credentials checked against htpasswd, or none for an anonymous
//     token; offline_token and client_id are accepted and ignored (no
//     refresh tokens are issued, so docker login keeps the password).
//   - POST with a form of grant_type=password, username, password,
//     service, scope (space-separated), client_id: the OAuth2 password
//     grant. grant_type=refresh_token is refused (unsupported_grant_type).
//
// The token grants the subset of the requested scopes that Allowed grants,
// plus registry:catalog:* to authenticated users who ask and AdminScope to
// administrators who ask. It answers
// {"token","access_token","expires_in","issued_at"}. A nil Authenticator or
// one without the built-in mode answers 404.
func (a *Authenticator) TokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a == nil || a.tokens == nil {
			http.NotFound(w, r)
			return
		}
		switch r.Method {
		case http.MethodGet:
			a.tokens.serveGet(w, r, a.now())
		case http.MethodPost:
			a.tokens.servePost(w, r, a.now())
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

// tokenServer issues the built-in mode's tokens. It is read-only and may
// be used concurrently.
type tokenServer struct {
	cfg        BuiltinTokenConfig
	basicRealm string            // of the challenge to bad credentials
	key        *ecdsa.PrivateKey // signs the tokens
	keyID      string
	users      *htpasswdFile // nil without htpasswd: only anonymous tokens
	access     *accessRules
	refuse     *refusals
	log        *slog.Logger
}

// serveGet answers a token GET at time now.
func (ts *tokenServer) serveGet(w http.ResponseWriter, r *http.Request, now time.Time) {
	q := r.URL.Query()
	id := Identity{Anonymous: true}
	if h := r.Header.Get("Authorization"); h != "" {
		user, pass, ok := r.BasicAuth()
		if !ok || ts.users == nil || !ts.users.authenticate(user, pass, now) {
			ts.log.Info("token request: bad credentials", "remote", r.RemoteAddr, "user", user)
			w.Header().Set("WWW-Authenticate", "Basic realm="+quote(ts.basicRealm))
			ts.refuse.writeError(w, r, api.ErrUnauthorized, "bad credentials", Access{})
			return
		}
		id = ts.access.identity(user)
	}
	if s := q.Get("service"); s != "" && s != ts.cfg.Service {
		ts.refuse.writeError(w, r, api.ErrUnsupported, "unknown service "+quote(s), Access{})
		return
	}
	ts.issue(w, id, q["scope"], now)
}

// servePost answers a token POST (the OAuth2 password grant) at time now.
func (ts *tokenServer) servePost(w http.ResponseWriter, r *http.Request, now time.Time) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	f := r.PostForm
	if f.Get("grant_type") != "password" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	user, pass := f.Get("username"), f.Get("password")
	if user == "" || ts.users == nil || !ts.users.authenticate(user, pass, now) {
		ts.log.Info("token request: bad credentials", "remote", r.RemoteAddr, "user", user)
		oauthError(w, http.StatusUnauthorized, "invalid_grant")
		return
	}
	if s := f.Get("service"); s != "" && s != ts.cfg.Service {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	ts.issue(w, ts.access.identity(user), f["scope"], now)
}

func oauthError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

// issue writes a signed token for id, issued at now, granting what it may
// of scopes.
func (ts *tokenServer) issue(w http.ResponseWriter, id Identity, scopes []string, now time.Time) {
	exp := ts.cfg.Expiry
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	c := &claims{
		Issuer:    ts.cfg.Issuer,
		Subject:   id.User,
		Audience:  audience{ts.cfg.Service},
		Expiry:    numericDate(now.Add(exp).Unix()),
		NotBefore: numericDate(now.Unix()),
		IssuedAt:  numericDate(now.Unix()),
		ID:        hex.EncodeToString(jti),
		Access:    ts.grant(id, scopes),
	}
	tok, err := signJWT(c, ts.key, ts.keyID)
	if err != nil {
		ts.log.Error("token signing failed", "err", err)
		http.Error(w, "token signing failed", http.StatusInternalServerError)
		return
	}
	body, _ := json.Marshal(struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		IssuedAt    string `json:"issued_at"`
	}{tok, tok, int(exp / time.Second), now.UTC().Format(time.RFC3339)})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// grant returns the access claims id may have of the requested scopes:
// "type:name:actions" each (a parameter may hold several, space-separated),
// with the granted actions only. Unknown types and invalid names are left
// out; so are resources granted nothing.
func (ts *tokenServer) grant(id Identity, scopes []string) []accessClaim {
	out := []accessClaim{}
	add := func(typ, name string, actions []string) {
		for i := range out {
			if out[i].Type == typ && out[i].Name == name {
				for _, act := range actions {
					if !slices.Contains(out[i].Actions, act) {
						out[i].Actions = append(out[i].Actions, act)
					}
				}
				return
			}
		}
		out = append(out, accessClaim{Type: typ, Name: name, Actions: actions})
	}
	for _, param := range scopes {
		for _, s := range strings.Fields(param) {
			typ, name, actions, ok := parseScope(s)
			if !ok {
				continue
			}
			var granted []string
			for _, act := range actions {
				switch {
				case slices.Contains(granted, act):
				case typ == "repository" && oci.ValidName(name) && ts.access.allowed(id, name, act):
					granted = append(granted, act)
				case typ == "registry" && name == "catalog" && act == ActionAll &&
					(!id.Anonymous || ts.access.anonymousCatalog()):
					granted = append(granted, act)
				case typ == "registry" && name == adminResource && act == ActionAdmin && ts.access.admin(id):
					granted = append(granted, act)
				}
			}
			if len(granted) > 0 {
				add(typ, name, granted)
			}
		}
	}
	return out
}

// parseScope splits "type[(class)]:name:action,action". A name may hold
// colons (a registry host with a port), so the type ends at the first
// colon and the actions start after the last.
func parseScope(s string) (typ, name string, actions []string, ok bool) {
	typ, rest, ok1 := strings.Cut(s, ":")
	i := strings.LastIndex(rest, ":")
	if !ok1 || i <= 0 {
		return "", "", nil, false
	}
	if j := strings.IndexByte(typ, '('); j >= 0 && strings.HasSuffix(typ, ")") {
		typ = typ[:j]
	}
	for _, act := range strings.Split(rest[i+1:], ",") {
		if act != "" {
			actions = append(actions, act)
		}
	}
	if len(actions) == 0 {
		return "", "", nil, false
	}
	return typ, rest[:i], actions, true
}
