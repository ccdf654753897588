package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// getToken asks srv's token endpoint for scopes; auth may be "".
func getToken(t *testing.T, base, auth string, scopes ...string) (int, tokenResponse, *claims) {
	t.Helper()
	q := url.Values{"service": {"atoll"}, "scope": scopes, "client_id": {"docker"}, "offline_token": {"true"}}
	resp, body := do(t, "GET", base+TokenPath+"?"+q.Encode(), nil, "Authorization", auth)
	var tr tokenResponse
	if resp.StatusCode != 200 {
		return resp.StatusCode, tr, nil
	}
	if err := json.Unmarshal([]byte(body), &tr); err != nil {
		t.Fatal(err)
	}
	_, c, _, _, err := parseJWT(tr.Token)
	if err != nil {
		t.Fatal(err)
	}
	return 200, tr, &c
}

func builtinConfig(t *testing.T) Config {
	return Config{
		Htpasswd:     HtpasswdConfig{Path: writeHtpasswd(t, "", map[string]string{"alice": "pw", "bob": "pw"})},
		BuiltinToken: BuiltinTokenConfig{Enabled: true},
		Access: AccessConfig{
			AnonymousPull: true,
			Rules: []Rule{
				{Repositories: []string{"team/**"}, Users: []string{"alice"}, Actions: []string{"pull"}},
				{Repositories: []string{"alice/*"}, Users: []string{"alice"}, Actions: []string{"*"}},
			},
		},
	}
}

func TestTokenGrantsSubset(t *testing.T) {
	a, clk := newAuth(t, builtinConfig(t))
	srv := serve(t, a)
	alice := basic("alice", "pw")
	status, tr, c := getToken(t, srv.URL, alice,
		"repository:team/app:pull,push,delete", "repository:alice/x:pull repository:alice/x:push", "repository:bad..name:pull",
		"repository:elsewhere:pull", "registry:catalog:*", "unknown:thing:pull")
	if status != 200 || tr.Token != tr.AccessToken || tr.ExpiresIn != 300 || tr.IssuedAt == "" {
		t.Fatalf("token: %d %+v", status, tr)
	}
	want := []accessClaim{
		{Type: "repository", Name: "team/app", Actions: []string{"pull"}},
		{Type: "repository", Name: "alice/x", Actions: []string{"pull", "push"}},
		{Type: "registry", Name: "catalog", Actions: []string{"*"}},
	}
	if !slices.EqualFunc(c.Access, want, func(x, y accessClaim) bool {
		return x.Type == y.Type && x.Name == y.Name && slices.Equal(x.Actions, y.Actions)
	}) || c.Subject != "alice" || c.Issuer != "atoll" || !slices.Equal(c.Audience, []string{"atoll"}) {
		t.Fatalf("claims: %+v", c)
	}
	bearer := "Bearer " + tr.Token
	for _, tt := range []struct {
		method, path string
		status       int
		challenge    string // suffix of WWW-Authenticate
	}{
		{"GET", "/v2/team/app/manifests/v1", 200, ""},
		{"GET", "/v2/alice/x/blobs/sha256:abc", 200, ""},
		{"POST", "/v2/alice/x/blobs/uploads/", 200, ""},
		{"GET", "/v2/_catalog", 200, ""},
		{"PUT", "/v2/team/app/manifests/v1", 403, ""},                             // the rules deny it anyway
		{"DELETE", "/v2/alice/x/manifests/v1", 401, `error="insufficient_scope"`}, // allowed, not in the token
		{"GET", "/v2/team/other/manifests/v1", 401, `scope="repository:team/other:pull",error="insufficient_scope"`},
	} {
		resp, body := do(t, tt.method, srv.URL+tt.path, nil, "Authorization", bearer)
		if resp.StatusCode != tt.status || !strings.HasSuffix(resp.Header.Get("WWW-Authenticate"), tt.challenge) {
			t.Errorf("%s %s: %s %q %s", tt.method, tt.path, resp.Status, resp.Header.Get("WWW-Authenticate"), body)
		}
	}
	// Expired (past the clock skew): refused.
	clk.add(5*time.Minute + clockSkew + time.Second)
	if resp, _ := do(t, "GET", srv.URL+"/v2/team/app/manifests/v1", nil, "Authorization", bearer); resp.StatusCode != 401 {
		t.Errorf("expired token: %s", resp.Status)
	}
}

func TestTokenRequests(t *testing.T) {
	a, _ := newAuth(t, builtinConfig(t))
	srv := serve(t, a)
	if status, _, c := getToken(t, srv.URL, "", "repository:team/app:pull,push"); status != 200 || c.Subject != "" ||
		len(c.Access) != 1 || !slices.Equal(c.Access[0].Actions, []string{"pull"}) {
		t.Errorf("anonymous token: %d %+v", status, c)
	}
	if status, _, _ := getToken(t, srv.URL, basic("alice", "bad"), "repository:team/app:pull"); status != 401 {
		t.Errorf("bad password: %d", status)
	}
	if resp, _ := do(t, "GET", srv.URL+TokenPath+"?service=other", nil); resp.StatusCode != 400 {
		t.Errorf("other service: %s", resp.Status)
	}
	for _, tt := range []struct {
		form   url.Values
		status int
	}{
		{url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"pw"}, "service": {"atoll"},
			"client_id": {"x"}, "scope": {"repository:alice/a:push repository:team/b:pull"}}, 200},
		{url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"no"}}, 401},
		{url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, 400},
	} {
		resp, body := do(t, "POST", srv.URL+TokenPath, []byte(tt.form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
		if resp.StatusCode != tt.status {
			t.Errorf("POST %v: %s %s", tt.form, resp.Status, body)
			continue
		}
		if tt.status == 200 {
			var tr tokenResponse
			_ = json.Unmarshal([]byte(body), &tr)
			tok, err := a.verifyToken(tr.AccessToken)
			if err != nil || len(tok.Access) != 2 {
				t.Errorf("POST token: %v %+v", err, tok)
			}
		}
	}
}

func TestTokenFromOtherKeyRefused(t *testing.T) {
	cfg := builtinConfig(t)
	a, _ := newAuth(t, cfg)
	other, _ := newAuth(t, cfg) // same config, its own generated key
	srv, otherSrv := serve(t, a), serve(t, other)
	_, tr, _ := getToken(t, otherSrv.URL, basic("alice", "pw"), "repository:team/app:pull")
	if resp, _ := do(t, "GET", srv.URL+"/v2/team/app/manifests/v1", nil, "Authorization", "Bearer "+tr.Token); resp.StatusCode != 401 {
		t.Errorf("other key's token: %s", resp.Status)
	}
	// The same kid with another key's signature.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged := signToken(t, jwtHeader{Alg: "ES256", Typ: "JWT", Kid: a.keyID},
		tokenClaims("atoll", "atoll", "alice", time.Now(), accessClaim{"repository", "team/app", []string{"pull"}}), key)
	if resp, _ := do(t, "GET", srv.URL+"/v2/team/app/manifests/v1", nil, "Authorization", "Bearer "+forged); resp.StatusCode != 401 {
		t.Errorf("forged token: %s", resp.Status)
	}
}

func TestSharedSigningKey(t *testing.T) {
	cfg := builtinConfig(t)
	seeded := func() *Authenticator {
		a, err := New(cfg, Deps{KeySeed: []byte("cluster secret")})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a, b := seeded(), seeded()
	_, tr, _ := getToken(t, serve(t, a).URL, basic("alice", "pw"), "repository:team/app:pull")
	if _, err := b.verifyToken(tr.Token); err != nil {
		t.Errorf("members sharing a seed: %v", err)
	}
	// And from a key file.
	der, _ := x509.MarshalPKCS8PrivateKey(a.key)
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.BuiltinToken.KeyPath = path
	c, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.verifyToken(tr.Token); err != nil {
		t.Errorf("key file: %v", err)
	}
}

func TestParseScope(t *testing.T) {
	for _, tt := range []struct {
		in, typ, name string
		actions       []string
	}{
		{"repository:foo/bar:pull,push", "repository", "foo/bar", []string{"pull", "push"}},
		{"repository:localhost:5000/foo:pull", "repository", "localhost:5000/foo", []string{"pull"}},
		{"repository(plugin):foo:pull", "repository", "foo", []string{"pull"}},
		{"registry:catalog:*", "registry", "catalog", []string{"*"}},
		{"repository:foo:", "", "", nil},
		{"repository:foo", "", "", nil},
		{"repository::pull", "", "", nil},
	} {
		typ, name, actions, ok := parseScope(tt.in)
		if typ != tt.typ || name != tt.name || !slices.Equal(actions, tt.actions) || ok != (tt.typ != "") {
			t.Errorf("parseScope(%q) = %q %q %v %v", tt.in, typ, name, actions, ok)
		}
	}
}
