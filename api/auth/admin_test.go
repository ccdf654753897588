package auth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAdmin(t *testing.T) {
	users := map[string]string{"root": "pw", "dev": "pw", "ops1": "pw"}
	for _, tt := range []struct {
		name  string
		rules []Rule
		admin map[string]bool
	}{
		{"no rules: every user", nil, map[string]bool{"root": true, "dev": true, "ops1": true}},
		{"by name and group", []Rule{
			{Users: []string{"root"}, Actions: []string{ActionAdmin}},
			{Groups: []string{"ops"}, Actions: []string{ActionAdmin}},
			{Repositories: []string{"**"}, Users: []string{"*"}, Actions: []string{ActionAll}},
		}, map[string]bool{"root": true, "ops1": true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Htpasswd: HtpasswdConfig{Path: writeHtpasswd(t, "", users)}}
			cfg.Access.Rules, cfg.Access.Groups = tt.rules, map[string][]string{"ops": {"ops1"}}
			a, _ := newAuth(t, cfg)
			srv := httptest.NewServer(a.WrapAdmin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				id, _ := FromContext(r.Context())
				_, _ = w.Write([]byte(id.User))
			})))
			defer srv.Close()
			for u := range users {
				resp, body := do(t, "GET", srv.URL, nil, "Authorization", basic(u, "pw"))
				want := http.StatusForbidden
				if tt.admin[u] {
					want = http.StatusOK
				}
				if resp.StatusCode != want || a.Admin(a.access.identity(u)) != tt.admin[u] {
					t.Errorf("%s: %d %s, Admin %v; want %d", u, resp.StatusCode, body, a.Admin(a.access.identity(u)), want)
				}
			}
			for _, h := range []string{"", basic("root", "wrong")} {
				if resp, _ := do(t, "GET", srv.URL, nil, "Authorization", h); resp.StatusCode != http.StatusUnauthorized ||
					!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("Authorization %q: %d %q, want 401 with a Basic challenge", h, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
				}
			}
		})
	}
}

func TestAdminToken(t *testing.T) {
	cfg := builtinConfig(t)
	cfg.Access.Rules = append(cfg.Access.Rules, Rule{Users: []string{"alice"}, Actions: []string{ActionAdmin}})
	a, _ := newAuth(t, cfg)
	srv := serve(t, a)
	mux := http.NewServeMux()
	mux.Handle("/", a.WrapAdmin(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	mux.Handle(TokenPath, a.TokenHandler())
	admin := httptest.NewServer(mux)
	defer admin.Close()

	resp, _ := do(t, "GET", admin.URL+"/_atoll/v1/cluster", nil)
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || !strings.Contains(ch, `scope="`+AdminScope+`"`) {
		t.Errorf("anonymous: %d %q, want 401 asking for %s", resp.StatusCode, ch, AdminScope)
	}
	for user, want := range map[string]int{"alice": 200, "bob": 403} {
		code, tr, c := getToken(t, srv.URL, basic(user, "pw"), AdminScope)
		if code != 200 {
			t.Fatalf("%s: token: %d", user, code)
		}
		if c.grantsAdmin() != (want == 200) {
			t.Errorf("%s: token grants admin %v", user, c.grantsAdmin())
		}
		if resp, body := do(t, "GET", admin.URL+"/_atoll/v1/cluster", nil, "Authorization", "Bearer "+tr.Token); resp.StatusCode != want {
			t.Errorf("%s with a token: %d %s, want %d", user, resp.StatusCode, body, want)
		}
	}
}

func TestAdminRuleNeedsNoRepositories(t *testing.T) {
	if _, err := compileRule(Rule{Users: []string{"a"}, Actions: []string{ActionAdmin}}); err != nil {
		t.Errorf("admin rule without repositories: %v", err)
	}
	if _, err := compileRule(Rule{Users: []string{"a"}, Actions: []string{ActionAdmin, ActionPull}}); err == nil {
		t.Error("pull rule without repositories accepted")
	}
}
