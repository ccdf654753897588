package route

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/auth"
	"github.com/atollhq/atoll/storage"
)

const secret = "s3cret"

// fakeMembers is a cluster of named members at fixed addresses.
type fakeMembers struct {
	order []string
	addrs map[string]string
	dead  map[string]bool
	hasFn func(member string) ([]bool, error)
}

func (f *fakeMembers) Preference(digest.Digest) []string { return f.order }

func (f *fakeMembers) Addr(name string) (string, bool) {
	a, ok := f.addrs[name]
	return a, ok && !f.dead[name]
}

func (f *fakeMembers) Has(_ context.Context, member string, _ []digest.Digest) ([]bool, error) {
	if f.hasFn == nil {
		return []bool{true}, nil
	}
	return f.hasFn(member)
}

// memBlobs holds blobs in memory.
type memBlobs map[digest.Digest][]byte

func (m memBlobs) Open(_ context.Context, d digest.Digest) (storage.Blob, error) {
	b, ok := m[d]
	if !ok {
		return nil, storage.ErrBlobUnknown
	}
	return memBlob{bytes.NewReader(b)}, nil
}

type memBlob struct{ *bytes.Reader }

func (memBlob) Close() error       { return nil }
func (memBlob) ModTime() time.Time { return time.Unix(1700000000, 0) }

// allow lets every identity do everything except the user "mallory".
type allow struct{}

func (allow) Allowed(id auth.Identity, _, _ string) bool { return id.User != "mallory" }

// member is one router behind a test server: the members' endpoint, and a
// client-facing front that does what api does with api.Remote.
type member struct {
	rt  *Router
	srv *httptest.Server
	log *syncBuffer
}

func newMember(t *testing.T, cfg Config, deps Deps) *member {
	t.Helper()
	m := &member{log: &syncBuffer{}}
	deps.Logger = slog.New(slog.NewTextHandler(m.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if deps.Blobs == nil {
		deps.Blobs = memBlobs{}
	}
	m.rt = New(cfg, deps)
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+BlobPath+"{digest}", m.rt.ServeMember)
	mux.HandleFunc("GET /v2/team/app/blobs/{digest}", func(w http.ResponseWriter, r *http.Request) {
		if err := m.rt.ServeBlob(w, r, digest.Digest(r.PathValue("digest"))); err != nil {
			api.WriteError(deps.Logger, w, r, err)
		}
	})
	mux.Handle("/v2/team/app/blobs/uploads/{id}", m.rt.MemberIdentity(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		forwarded, err := m.rt.ForwardUpload(w, r, r.PathValue("id"))
		switch {
		case err != nil:
			api.WriteError(deps.Logger, w, r, err)
		case !forwarded:
			id, _ := auth.FromContext(r.Context())
			_, _ = io.WriteString(w, "held here for "+id.User)
		}
	})))
	m.srv = httptest.NewServer(mux)
	t.Cleanup(m.srv.Close)
	return m
}

// deadAddr is an address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func host(srv *httptest.Server) string { return strings.TrimPrefix(srv.URL, "http://") }

// TestFailuresAreOCIErrors sends requests that fail between members and
// checks that each answer is the spec's error JSON with the right code,
// names no member and carries no rpc error, and that the internal text went
// to the log instead.
func TestFailuresAreOCIErrors(t *testing.T) {
	blob := []byte("layer bytes")
	d := digest.FromBytes(blob)
	dead := deadAddr(t)
	rpcErr := errors.New("rpc error: code = Unavailable desc = member owner-7 unreachable")

	down := newMember(t, Config{Self: "front-1"}, Deps{Members: &fakeMembers{
		order: []string{"owner-7", "front-1"}, addrs: map[string]string{"owner-7": dead},
	}})
	redirect := newMember(t, Config{Self: "front-1", Mode: ModeRedirect}, Deps{Members: &fakeMembers{
		order: []string{"owner-7", "front-1"}, addrs: map[string]string{"owner-7": dead},
		hasFn: func(string) ([]bool, error) { return nil, rpcErr },
	}})
	gone := newMember(t, Config{Self: "front-1"}, Deps{Members: &fakeMembers{
		addrs: map[string]string{"owner-7": dead}, dead: map[string]bool{"owner-7": true},
	}})
	unreachable := newMember(t, Config{Self: "front-1"}, Deps{Members: &fakeMembers{
		addrs: map[string]string{"owner-7": dead},
	}})
	authed := newMember(t, Config{Self: "owner-7", Secret: secret}, Deps{Access: allow{}, Blobs: memBlobs{d: blob}})
	future := time.Now().Add(time.Minute).Unix()

	for _, tc := range []struct {
		name   string
		m      *member
		path   string
		header http.Header
		status int
		code   string
		logged string // internal text the log must hold
	}{
		{"proxied read, owner down", down, "/v2/team/app/blobs/" + d.String(), nil, 404, "BLOB_UNKNOWN", "connection refused"},
		{"redirect, owner answers an rpc error", redirect, "/v2/team/app/blobs/" + d.String(), nil, 404, "BLOB_UNKNOWN", "rpc error"},
		{"upload held by a member gone", gone, "/v2/team/app/blobs/uploads/owner-7.abc", nil, 404, "BLOB_UPLOAD_UNKNOWN", "member owner-7 is gone"},
		{"upload forwarded to a dead member", unreachable, "/v2/team/app/blobs/uploads/owner-7.abc", nil, 503, "UNAVAILABLE", "connection refused"},
		{"bad signature", authed, BlobPath + d.String() + "?expires=" + jsonInt(future) + "&sig=00", nil, 401, "UNAUTHORIZED", ""},
		{"expired signature", authed, BlobPath + d.String() + "?expires=1&sig=" + authed.rt.sign(d, "1"), nil, 401, "UNAUTHORIZED", ""},
		{"wrong member token", authed, BlobPath + d.String(), http.Header{TokenHeader: {Token("another")}}, 401, "UNAUTHORIZED", ""},
		{"malformed digest", authed, BlobPath + "sha256:xyz", http.Header{TokenHeader: {Token(secret)}}, 400, "DIGEST_INVALID", ""},
		{"blob not held", authed, BlobPath + digest.FromString("x").String(), http.Header{TokenHeader: {Token(secret)}}, 404, "BLOB_UNKNOWN", ""},
		{"forwarded identity without the token", authed, "/v2/team/app/blobs/uploads/owner-7.abc",
			http.Header{identityHeader: {encodeIdentity(auth.Identity{User: "alice"})}}, 401, "UNAUTHORIZED", ""},
		{"forwarded identity denied", authed, "/v2/team/app/blobs/uploads/owner-7.abc",
			http.Header{identityHeader: {encodeIdentity(auth.Identity{User: "mallory"})}, TokenHeader: {Token(secret)}}, 403, "DENIED", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tc.m.srv.URL+tc.path, nil)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var e struct {
				Errors []struct{ Code, Message string }
			}
			if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 {
				t.Fatalf("not the spec's error JSON (%v): %s", err, body)
			}
			if e.Errors[0].Code != tc.code {
				t.Errorf("code %s, want %s", e.Errors[0].Code, tc.code)
			}
			for _, leak := range []string{"owner-7", "front-1", "rpc error", dead, "connection refused"} {
				if strings.Contains(string(body), leak) {
					t.Errorf("body %s contains internal text %q", body, leak)
				}
			}
			if tc.logged != "" && !strings.Contains(tc.m.log.String(), tc.logged) {
				t.Errorf("log lacks %q:\n%s", tc.logged, tc.m.log.String())
			}
		})
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// syncBuffer is a log sink the server's goroutines share with the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRoutes reads a blob held by another member through each path
// (streamed, redirected, signed) and forwards an upload request
// with its client's identity.
func TestRoutes(t *testing.T) {
	blob := []byte("0123456789 layer bytes")
	d := digest.FromBytes(blob)
	owner := newMember(t, Config{Self: "owner-7", Secret: secret}, Deps{Access: allow{}, Blobs: memBlobs{d: blob}})
	members := &fakeMembers{order: []string{"owner-7", "front-1"}, addrs: map[string]string{"owner-7": host(owner.srv)}}
	proxy := newMember(t, Config{Self: "front-1", Secret: secret}, Deps{Members: members, Access: allow{}})
	signed := newMember(t, Config{Self: "front-1", Secret: secret, Mode: ModeRedirect}, Deps{Members: members, Access: allow{}})
	open := newMember(t, Config{Self: "front-1", Mode: ModeRedirect}, Deps{Members: members})
	path := "/v2/team/app/blobs/" + d.String()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	get := func(t *testing.T, c *http.Client, method, url string, h ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		for i := 0; i+1 < len(h); i += 2 {
			req.Header.Set(h[i], h[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}

	t.Run("streamed GET", func(t *testing.T) {
		resp, body := get(t, http.DefaultClient, "GET", proxy.srv.URL+path)
		if resp.StatusCode != 200 || body != string(blob) || resp.Header.Get("Docker-Content-Digest") != d.String() {
			t.Fatalf("%d %q %v", resp.StatusCode, body, resp.Header)
		}
	})
	t.Run("streamed range", func(t *testing.T) {
		resp, body := get(t, http.DefaultClient, "GET", proxy.srv.URL+path, "Range", "bytes=2-4")
		if resp.StatusCode != 206 || body != "234" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})
	t.Run("range past the end", func(t *testing.T) {
		resp, _ := get(t, http.DefaultClient, "GET", proxy.srv.URL+path, "Range", "bytes=100-200")
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			t.Fatalf("%d", resp.StatusCode)
		}
	})
	t.Run("streamed HEAD", func(t *testing.T) {
		resp, _ := get(t, http.DefaultClient, "HEAD", proxy.srv.URL+path)
		if resp.StatusCode != 200 || resp.ContentLength != int64(len(blob)) {
			t.Fatalf("%d length %d", resp.StatusCode, resp.ContentLength)
		}
	})
	t.Run("streamed to any ResponseWriter", func(t *testing.T) {
		rec := httptest.NewRecorder()
		if err := proxy.rt.ServeBlob(rec, httptest.NewRequest("GET", path, nil), d); err != nil {
			t.Fatal(err)
		}
		if rec.Code != 200 || rec.Body.String() != string(blob) {
			t.Fatalf("%d %q", rec.Code, rec.Body.String())
		}
	})
	t.Run("redirect to a signed URL", func(t *testing.T) {
		resp, _ := get(t, noRedirect, "GET", signed.srv.URL+path)
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, owner.srv.URL+BlobPath+d.String()+"?") {
			t.Fatalf("%d Location %q", resp.StatusCode, loc)
		}
		if resp, body := get(t, http.DefaultClient, "GET", loc); resp.StatusCode != 200 || body != string(blob) {
			t.Fatalf("signed URL: %d %q", resp.StatusCode, body)
		}
		if resp, _ := get(t, http.DefaultClient, "GET", strings.Replace(loc, "sig=", "sig=0", 1)); resp.StatusCode != 401 {
			t.Fatalf("tampered signed URL: %d", resp.StatusCode)
		}
	})
	t.Run("redirect on a registry open to all", func(t *testing.T) {
		resp, _ := get(t, noRedirect, "GET", open.srv.URL+path)
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusTemporaryRedirect || loc != owner.srv.URL+path {
			t.Fatalf("%d Location %q", resp.StatusCode, loc)
		}
	})
	t.Run("passed on by a member catching up: streamed, not redirected", func(t *testing.T) {
		// A 307 would send the client to a holder that may be the member
		// catching up, which would pass it on here again.
		resp, body := get(t, noRedirect, "GET", signed.srv.URL+path, PassedOnHeader, "front-2")
		if resp.StatusCode != 200 || body != string(blob) {
			t.Fatalf("%d Location %q body %q", resp.StatusCode, resp.Header.Get("Location"), body)
		}
	})
	t.Run("upload forwarded with its client", func(t *testing.T) {
		ctx := auth.ContextWithIdentity(context.Background(), auth.Identity{User: "alice"})
		req := httptest.NewRequest("PATCH", "/v2/team/app/blobs/uploads/owner-7.abc", strings.NewReader("chunk")).WithContext(ctx)
		req.Header.Set(identityHeader, encodeIdentity(auth.Identity{User: "mallory"})) // the client's own: dropped
		rec := httptest.NewRecorder()
		forwarded, err := proxy.rt.ForwardUpload(rec, req, "owner-7.abc")
		if err != nil || !forwarded || rec.Body.String() != "held here for alice" {
			t.Fatalf("forwarded %v, err %v: %d %q", forwarded, err, rec.Code, rec.Body.String())
		}
		if forwarded, err := proxy.rt.ForwardUpload(rec, req, "front-1.abc"); forwarded || err != nil {
			t.Fatalf("own upload: forwarded %v, err %v", forwarded, err)
		}
	})
}

// TestTrusted checks who the members' endpoints answer.
func TestTrusted(t *testing.T) {
	withToken := func(tok string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		if tok != "" {
			r.Header.Set(TokenHeader, tok)
		}
		return r
	}
	for _, tc := range []struct {
		name   string
		secret string
		access Access
		req    *http.Request
		want   bool
	}{
		{"open registry, no token", "", nil, withToken(""), true},
		{"authenticated registry without a secret", "", allow{}, withToken(Token("")), false},
		{"member token", secret, nil, withToken(Token(secret)), true},
		{"another cluster's token", secret, nil, withToken(Token("other")), false},
		{"no token", secret, allow{}, withToken(""), false},
	} {
		rt := New(Config{Secret: tc.secret}, Deps{Access: tc.access})
		if got := rt.Trusted(tc.req); got != tc.want {
			t.Errorf("%s: Trusted %v, want %v", tc.name, got, tc.want)
		}
	}
}
