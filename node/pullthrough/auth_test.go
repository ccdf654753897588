package pullthrough

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/atollhq/atoll/oci"
	"github.com/atollhq/atoll/storage"
)

// tokenServer issues tokens to user:secret, recording each request's scope.
type tokenServer struct {
	srv    *httptest.Server
	mu     sync.Mutex
	scopes []string
	issued map[string]bool
}

func newTokenServer(t *testing.T) *tokenServer {
	ts := &tokenServer{issued: map[string]bool{}}
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		if user != "user" || pass != "secret" || r.URL.Query().Get("service") != "test-registry" {
			http.Error(w, "bad credentials or service", http.StatusUnauthorized)
			return
		}
		ts.mu.Lock()
		defer ts.mu.Unlock()
		ts.scopes = append(ts.scopes, r.URL.Query().Get("scope"))
		tok := fmt.Sprintf("token-%d", len(ts.scopes))
		ts.issued[tok] = true
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "expires_in": 300})
	}))
	t.Cleanup(ts.srv.Close)
	return ts
}

// requireBearer is the registry's side of the handshake.
func (ts *tokenServer) requireBearer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		ts.mu.Lock()
		valid := ok && ts.issued[tok]
		ts.mu.Unlock()
		if !valid {
			repo := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/v2/"), "/manifests/", 2)[0]
			repo = strings.SplitN(repo, "/blobs/", 2)[0]
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="test-registry",scope="repository:%s:pull"`, ts.srv.URL+"/token", repo))
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestBearerTokenHandshake(t *testing.T) {
	ts := newTokenServer(t)
	up := newUpstream(t, ts.requireBearer)
	img := up.push(t, "library/alpine", "3")
	cfg := Config{Upstreams: []Upstream{{Prefix: "hub/", RemoteURL: up.served.URL, Username: "user", Password: "secret"}}}
	tc := newTestCache(t, cfg)

	if got := tc.pull(t, "hub/library/alpine", "3"); got != digestOf(t, img) {
		t.Fatalf("pulled %s, pushed %s", got, digestOf(t, img))
	}
	ts.mu.Lock()
	scopes := ts.scopes
	ts.mu.Unlock()
	if want := []string{"repository:library/alpine:pull"}; !reflect.DeepEqual(scopes, want) {
		t.Errorf("token requests: scopes %q, want %q (one token, cached for the manifest and every blob)", scopes, want)
	}

	wrong := Config{Upstreams: []Upstream{{Prefix: "hub/", RemoteURL: up.served.URL, Username: "user", Password: "wrong"}}}
	bad := newTestCache(t, wrong)
	if _, err := bad.Manifest(context.Background(), "hub/library/alpine", oci.Reference{Tag: "3"}); !errors.Is(err, storage.ErrTagUnknown) {
		t.Errorf("wrong password: %v, want ErrTagUnknown (access refused)", err)
	}
}

func TestBasicAuth(t *testing.T) {
	requireBasic := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if user, pass, ok := r.BasicAuth(); !ok || user != "user" || pass != "secret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	up := newUpstream(t, requireBasic)
	img := up.push(t, "app", "v1")
	tc := newTestCache(t, Config{Proxy: Upstream{RemoteURL: up.served.URL, Username: "user", Password: "secret"}})
	if got := tc.pull(t, "app", "v1"); got != digestOf(t, img) {
		t.Fatalf("pulled %s, pushed %s", got, digestOf(t, img))
	}
}

func TestParseBearer(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want challenge
		ok   bool
	}{
		{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"`,
			challenge{"https://auth.docker.io/token", "registry.docker.io", "repository:library/alpine:pull"}, true},
		{`bearer realm="https://a/t", scope="repository:x:pull,push"`, challenge{"https://a/t", "", "repository:x:pull,push"}, true},
		{`Bearer realm=https://a/t,service=s`, challenge{"https://a/t", "s", ""}, true},
		{`Bearer realm="https://a/\"q\"",service="s"`, challenge{`https://a/"q"`, "s", ""}, true},
		{`Basic realm="x"`, challenge{}, false},
		{`Bearer service="s"`, challenge{}, false},
	} {
		got, ok := parseBearer([]string{tc.in})
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseBearer(%s) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
