package auth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestChallenges(t *testing.T) {
	pw := writeHtpasswd(t, "", map[string]string{"alice": "pw"})
	bundle, _, _ := newCA(t)
	htpasswd := Config{Htpasswd: HtpasswdConfig{Realm: "My Registry", Path: pw}}
	builtin := Config{Htpasswd: HtpasswdConfig{Path: pw}, BuiltinToken: BuiltinTokenConfig{Enabled: true}}
	builtinRealm := Config{BuiltinToken: BuiltinTokenConfig{Enabled: true, Realm: "https://reg.example/auth/token", Service: "reg"}}
	external := Config{Token: TokenConfig{Realm: "https://auth.example/token", Service: "registry.example", Issuer: "auth", RootCertBundle: bundle}}
	redirect := external
	redirect.Token.AutoRedirect = true
	const pullDetail = `[{"Type":"repository","Name":"team/app","Action":"pull"}]`
	for _, tt := range []struct {
		name        string
		cfg         Config
		method, url string
		auth        string
		challenge   string // %s is the test server's host
		body        string
	}{
		{"htpasswd ping", htpasswd, "GET", "/v2/", "",
			`Basic realm="My Registry"`,
			`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`},
		{"htpasswd pull", htpasswd, "GET", "/v2/team/app/manifests/v1", "",
			`Basic realm="My Registry"`,
			`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":` + pullDetail + `}]}`},
		{"htpasswd bad password", htpasswd, "PUT", "/v2/team/app/manifests/v1", basic("alice", "x"),
			`Basic realm="My Registry"`,
			`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[{"Type":"repository","Name":"team/app","Action":"push"}]}]}`},
		{"builtin ping", builtin, "GET", "/v2/", "",
			`Bearer realm="http://%s/auth/token",service="atoll"`, ""},
		{"builtin pull", builtin, "GET", "/v2/team/app/blobs/sha256:abc", "",
			`Bearer realm="http://%s/auth/token",service="atoll",scope="repository:team/app:pull"`, ""},
		{"builtin push", builtin, "POST", "/v2/team/app/blobs/uploads/", "",
			`Bearer realm="http://%s/auth/token",service="atoll",scope="repository:team/app:push"`, ""},
		{"builtin catalog", builtin, "GET", "/v2/_catalog", "",
			`Bearer realm="http://%s/auth/token",service="atoll",scope="registry:catalog:*"`, ""},
		{"builtin bad token", builtin, "DELETE", "/v2/team/app/manifests/v1", "Bearer a.b.c",
			`Bearer realm="http://%s/auth/token",service="atoll",scope="repository:team/app:delete",error="invalid_token"`, ""},
		{"builtin configured realm", builtinRealm, "GET", "/v2/", "",
			`Bearer realm="https://reg.example/auth/token",service="reg"`, ""},
		{"external pull", external, "GET", "/v2/team/app/tags/list", "",
			`Bearer realm="https://auth.example/token",service="registry.example",scope="repository:team/app:pull"`,
			`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":` + pullDetail + `}]}`},
		{"external basic refused", external, "GET", "/v2/", basic("alice", "pw"),
			`Bearer realm="https://auth.example/token",service="registry.example"`, ""},
		{"external autoredirect", redirect, "GET", "/v2/", "",
			`Bearer realm="http://%s/auth/token",service="registry.example"`, ""},
	} {
		a, _ := newAuth(t, tt.cfg)
		srv := serve(t, a)
		resp, body := do(t, tt.method, srv.URL+tt.url, nil, "Authorization", tt.auth)
		want := tt.challenge
		if strings.Contains(want, "%s") {
			want = strings.ReplaceAll(want, "%s", strings.TrimPrefix(srv.URL, "http://"))
		}
		h := resp.Header
		if resp.StatusCode != 401 || h.Get("WWW-Authenticate") != want ||
			h.Get("Content-Type") != "application/json" || h.Get("Docker-Distribution-API-Version") != "registry/2.0" {
			t.Errorf("%s: %s\n got %q\nwant %q\n%v", tt.name, resp.Status, h.Get("WWW-Authenticate"), want, h)
		}
		if tt.body != "" && body != tt.body {
			t.Errorf("%s: body %s\nwant %s", tt.name, body, tt.body)
		}
	}
}

func TestDeniedVersusUnauthorized(t *testing.T) {
	cfg := Config{
		Htpasswd: HtpasswdConfig{Path: writeHtpasswd(t, "", map[string]string{"alice": "pw", "bob": "pw"})},
		Access: AccessConfig{
			AnonymousPull: true,
			Rules:         []Rule{{Repositories: []string{"team/**"}, Users: []string{"alice"}, Actions: []string{"pull", "push"}}},
		},
	}
	a, _ := newAuth(t, cfg)
	srv := serve(t, a)
	alice, bob := basic("alice", "pw"), basic("bob", "pw")
	for _, tt := range []struct {
		method, path, auth string
		status             int
		code               string
	}{
		{"GET", "/v2/team/app/manifests/v1", alice, 200, ""},
		{"PUT", "/v2/team/app/manifests/v1", alice, 200, ""},
		{"DELETE", "/v2/team/app/manifests/v1", alice, 403, "DENIED"},
		{"PUT", "/v2/other/manifests/v1", alice, 403, "DENIED"},
		{"GET", "/v2/team/app/manifests/v1", bob, 403, "DENIED"}, // rules exist: bob has none
		{"GET", "/v2/team/app/manifests/v1", "", 200, ""},        // anonymous pull
		{"HEAD", "/v2/team/app/manifests/v1", "", 200, ""},
		{"PUT", "/v2/team/app/manifests/v1", "", 401, "UNAUTHORIZED"},
		{"GET", "/v2/", "", 401, "UNAUTHORIZED"}, // the ping always challenges
		{"GET", "/v2/", bob, 200, ""},
		{"GET", "/v2/_catalog", "", 200, ""}, // anonymous pull: filtered by the API
		{"GET", "/v2/_catalog", bob, 200, ""},
		{"POST", "/v2/team/app/manifests/v1", bob, 200, ""}, // unrouted: the API answers 405
	} {
		resp, body := do(t, tt.method, srv.URL+tt.path, nil, "Authorization", tt.auth)
		if resp.StatusCode != tt.status || tt.code != "" && !strings.Contains(body, `"code":"`+tt.code+`"`) {
			t.Errorf("%s %s as %q: %s %s", tt.method, tt.path, tt.auth, resp.Status, body)
		}
	}
	// Without anonymous pull, the catalog needs credentials too.
	cfg.Access.AnonymousPull = false
	a, _ = newAuth(t, cfg)
	if resp, _ := do(t, "GET", serve(t, a).URL+"/v2/_catalog", nil); resp.StatusCode != 401 {
		t.Errorf("anonymous catalog: %s", resp.Status)
	}
}

func TestHeadErrorHasNoBody(t *testing.T) {
	a, _ := newAuth(t, Config{Htpasswd: HtpasswdConfig{Path: writeHtpasswd(t, "", nil)}})
	w := httptest.NewRecorder()
	a.Wrap(http.NotFoundHandler()).ServeHTTP(w, httptest.NewRequest("HEAD", "/v2/a/manifests/b", nil))
	if w.Code != 401 || w.Body.Len() != 0 || w.Header().Get("Content-Length") == "0" {
		t.Errorf("HEAD: %d %q %v", w.Code, w.Body, w.Header())
	}
}

func TestTrustedIdentitySkipsChecks(t *testing.T) {
	a, _ := newAuth(t, Config{Htpasswd: HtpasswdConfig{Path: writeHtpasswd(t, "", nil)}})
	var got Identity
	h := a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got, _ = FromContext(r.Context()) }))
	r := httptest.NewRequest("DELETE", "/v2/a/manifests/b", nil)
	want := Identity{User: "carol", Groups: []string{"ops"}}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r.WithContext(ContextWithIdentity(r.Context(), want)))
	if w.Code != 200 || got.User != "carol" || len(got.Groups) != 1 {
		t.Errorf("trusted request: %d %+v", w.Code, got)
	}
	// A nil Authenticator wraps nothing.
	var none *Authenticator
	w = httptest.NewRecorder()
	none.Wrap(http.NotFoundHandler()).ServeHTTP(w, r)
	if w.Code != 404 {
		t.Errorf("nil Authenticator: %d", w.Code)
	}
}

func TestMountSourceNeedsPull(t *testing.T) {
	const d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	a, _ := newAuth(t, Config{
		Htpasswd: HtpasswdConfig{Path: writeHtpasswd(t, "", map[string]string{"alice": "pw"})},
		Access: AccessConfig{Rules: []Rule{
			{Repositories: []string{"mine/*"}, Users: []string{"alice"}, Actions: []string{"*"}},
			{Repositories: []string{"shared"}, Users: []string{"alice"}, Actions: []string{"pull"}},
		}},
	})
	srv := serve(t, a)
	for _, tt := range []struct{ from, query string }{
		{"shared", "mount=" + d + "&from=shared"},
		{"mine/b", "mount=" + d + "&from=mine/b"},
		{"secret", ""}, // no pull on the source: a plain upload
	} {
		resp, body := do(t, "POST", srv.URL+"/v2/mine/a/blobs/uploads/?mount="+d+"&from="+tt.from, nil,
			"Authorization", basic("alice", "pw"))
		if resp.StatusCode != 200 || body != "alice|"+tt.query {
			t.Errorf("mount from %s: %s %q", tt.from, resp.Status, body)
		}
	}
}
