package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/node"
)

// Authentication and access control as users run them: atoll processes
// configured with registry:2's REGISTRY_AUTH_* variables or config file,
// an htpasswd file written by `atoll htpasswd`, and real clients
// (go-containerregistry, crane, net/http).

// secUser is a user of the htpasswd file; the zero value is anonymous.
type secUser struct{ name, password string }

var (
	secAlice     = secUser{"alice", "alice-s3cret"}
	secBob       = secUser{"bob", "bob-s3cret"}
	secCarol     = secUser{"carol", "carol-s3cret"}
	secPublisher = secUser{"publisher", "publisher-s3cret"}
	secAnonymous = secUser{}
)

// secHtpasswd writes path with an entry per user, each made by the atoll
// binary's htpasswd subcommand, and returns path.
func secHtpasswd(t *testing.T, path string, users ...secUser) string {
	t.Helper()
	var b strings.Builder
	for _, u := range users {
		out, err := exec.Command(atollBin, "htpasswd", u.name, u.password).Output()
		if err != nil {
			t.Fatalf("atoll htpasswd %s: %v", u.name, err)
		}
		b.Write(out)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// secResponse is a finished exchange.
type secResponse struct {
	status int
	header http.Header
	body   []byte
}

// secDo sends one request as u (Basic credentials unless anonymous) with
// extra headers, over hc (a fresh default client when nil).
func secDo(t *testing.T, hc *http.Client, method, url string, u secUser, header http.Header, body []byte) secResponse {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if u.name != "" {
		req.SetBasicAuth(u.name, u.password)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return secResponse{resp.StatusCode, resp.Header, b}
}

// secExpectError fails unless r has the status and the distribution
// spec's error JSON with code first.
func secExpectError(t *testing.T, what string, r secResponse, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d; body %.300q", what, r.status, status, r.body)
	}
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("%s: not an OCI error body (%v): %q", what, err, r.body)
	}
	if e.Errors[0].Code != code {
		t.Errorf("%s: code %s, want %s", what, e.Errors[0].Code, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
}

// secChallenge fails unless r carries exactly one WWW-Authenticate, want.
func secChallenge(t *testing.T, what string, r secResponse, want string) {
	t.Helper()
	if got := r.header.Values("WWW-Authenticate"); !slices.Equal(got, []string{want}) {
		t.Errorf("%s: WWW-Authenticate %q, want exactly %q", what, got, want)
	}
}

// secRemote returns go-containerregistry options acting as u, with no
// retries so that a refusal fails at once; tr defaults to a fresh
// transport.
func secRemote(u secUser, tr http.RoundTripper) []remote.Option {
	var a authn.Authenticator = authn.Anonymous
	if u.name != "" {
		a = &authn.Basic{Username: u.name, Password: u.password}
	}
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	return []remote.Option{remote.WithAuth(a), remote.WithTransport(tr),
		remote.WithRetryPredicate(func(error) bool { return false }), remote.WithRetryStatusCodes()}
}

// secRef parses host/repo:tag, plain HTTP unless tls.
func secRef(t *testing.T, host, repoTag string, tls bool) name.Reference {
	t.Helper()
	var opts []name.Option
	if !tls {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(host+"/"+repoTag, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// secImage is a small random image.
func secImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(4<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// secPull pulls ref and checks it is img, every blob read and verified.
func secPull(ref name.Reference, img v1.Image, opts []remote.Option) error {
	got, err := remote.Image(ref, opts...)
	if err != nil {
		return err
	}
	want, _ := img.Digest()
	if d, err := got.Digest(); err != nil || d != want {
		return fmt.Errorf("pulled %s (%v), pushed %s", d, err, want)
	}
	return validate.Image(got)
}

// secStatus is the HTTP status of a go-containerregistry error, 0 if none.
func secStatus(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}

// secCrane runs crane with its own Docker config directory (so `crane auth
// login` stores credentials for this test only) and returns its output.
func secCrane(t *testing.T, dockerConfig string, args ...string) (string, error) {
	t.Helper()
	crane := clientBinary(t, "crane", "go install github.com/google/go-containerregistry/cmd/crane@latest")
	cmd := exec.Command(crane, args...)
	cmd.Env = append(cleanEnv(), "DOCKER_CONFIG="+dockerConfig)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestSecurityHtpasswd runs a member with registry:2's htpasswd variables:
// the challenge, pushes and pulls with good credentials, refusals of bad
// ones, and users added to and removed from the file while it runs.
func TestSecurityHtpasswd(t *testing.T) {
	dir := t.TempDir()
	htpasswd := secHtpasswd(t, filepath.Join(dir, "htpasswd"), secAlice)
	const realm = "atoll security test"
	n := startNodeWith(t, filepath.Join(dir, "data"), nodeOptions{env: []string{
		"REGISTRY_AUTH=htpasswd",
		"REGISTRY_AUTH_HTPASSWD_REALM=" + realm,
		"REGISTRY_AUTH_HTPASSWD_PATH=" + htpasswd,
	}})
	basic := `Basic realm="` + realm + `"`

	for _, path := range []string{"/v2/", "/v2/_catalog", "/v2/team/app/tags/list", "/v2/team/app/manifests/v1"} {
		r := secDo(t, nil, "GET", n.URL()+path, secAnonymous, nil, nil)
		secExpectError(t, "anonymous GET "+path, r, http.StatusUnauthorized, "UNAUTHORIZED")
		secChallenge(t, "anonymous GET "+path, r, basic)
		if v := r.header.Get("Docker-Distribution-API-Version"); v != "registry/2.0" {
			t.Errorf("anonymous GET %s: Docker-Distribution-API-Version %q", path, v)
		}
	}
	r := secDo(t, nil, "POST", n.URL()+"/v2/team/app/blobs/uploads/", secAnonymous, nil, nil)
	secExpectError(t, "anonymous POST upload", r, http.StatusUnauthorized, "UNAUTHORIZED")

	img := secImage(t)
	ref := secRef(t, n.Addr(), "team/app:v1", false)
	if err := remote.Write(ref, img, secRemote(secAlice, nil)...); err != nil {
		t.Fatalf("push as alice: %v", err)
	}
	if err := secPull(ref, img, secRemote(secAlice, nil)); err != nil {
		t.Fatalf("pull as alice: %v", err)
	}
	if r := secDo(t, nil, "GET", n.URL()+"/v2/", secAlice, nil, nil); r.status != http.StatusOK {
		t.Errorf("GET /v2/ as alice: %d %s", r.status, r.body)
	}

	for _, u := range []secUser{{"alice", "wrong"}, {"alice", ""}, {"mallory", "alice-s3cret"}, {"alice", secAlice.password + "x"}} {
		r := secDo(t, nil, "GET", n.URL()+"/v2/", u, nil, nil)
		secExpectError(t, "GET /v2/ as "+u.name+":"+u.password, r, http.StatusUnauthorized, "UNAUTHORIZED")
		secChallenge(t, "bad password", r, basic)
	}
	if err := remote.Write(secRef(t, n.Addr(), "team/app:bad", false), img, secRemote(secUser{"alice", "wrong"}, nil)...); secStatus(err) != http.StatusUnauthorized {
		t.Errorf("push with a bad password: %v, want 401", err)
	}
	if err := secPull(ref, img, secRemote(secUser{"alice", "wrong"}, nil)); secStatus(err) != http.StatusUnauthorized {
		t.Errorf("pull with a bad password: %v, want 401", err)
	}
	if err := secPull(ref, img, secRemote(secAnonymous, nil)); secStatus(err) != http.StatusUnauthorized {
		t.Errorf("anonymous pull: %v, want 401", err)
	}

	// crane, logged in with `crane auth login`.
	cfg := t.TempDir()
	if out, err := secCrane(t, cfg, "auth", "login", n.Addr(), "-u", secAlice.name, "-p", secAlice.password); err != nil {
		t.Fatalf("crane auth login: %v\n%s", err, out)
	}
	want, _ := img.Digest()
	if out, err := secCrane(t, cfg, "digest", "--insecure", n.Addr()+"/team/app:v1"); err != nil || strings.TrimSpace(out) != want.String() {
		t.Errorf("crane digest as alice: %q, %v; want %s", out, err, want)
	}
	if out, err := secCrane(t, t.TempDir(), "digest", "--insecure", n.Addr()+"/team/app:v1"); err == nil || !strings.Contains(out, "401") {
		t.Errorf("crane digest without login: %q, %v; want a 401", out, err)
	}

	// A user added to the file can log in without a restart; one removed
	// no longer can.
	pid := n.cmd.Process.Pid
	if r := secDo(t, nil, "GET", n.URL()+"/v2/", secCarol, nil, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("carol before she is added: %d", r.status)
	}
	secHtpasswd(t, htpasswd, secAlice, secCarol)
	took := pollUntil(t, 10*time.Second, "carol, added to the htpasswd file, logs in", func() error {
		if r := secDo(t, nil, "GET", n.URL()+"/v2/", secCarol, nil, nil); r.status != http.StatusOK {
			return fmt.Errorf("GET /v2/ as carol: %d", r.status)
		}
		return nil
	})
	t.Logf("new htpasswd user accepted %v after the file was written", took.Round(time.Millisecond))
	if err := secPull(ref, img, secRemote(secCarol, nil)); err != nil {
		t.Errorf("pull as carol: %v", err)
	}
	secHtpasswd(t, htpasswd, secCarol)
	pollUntil(t, 10*time.Second, "alice, removed from the htpasswd file, is refused", func() error {
		if r := secDo(t, nil, "GET", n.URL()+"/v2/", secAlice, nil, nil); r.status != http.StatusUnauthorized {
			return fmt.Errorf("GET /v2/ as alice: %d", r.status)
		}
		return nil
	})
	if pid != n.cmd.Process.Pid || !n.running() {
		t.Errorf("the member restarted")
	}
}

// TestSecurityBuiltinToken runs the built-in token server: the Bearer
// challenge, the token endpoint, and go-containerregistry and crane going
// through the token dance for pushes and pulls.
func TestSecurityBuiltinToken(t *testing.T) {
	dir := t.TempDir()
	htpasswd := secHtpasswd(t, filepath.Join(dir, "htpasswd"), secAlice, secBob)
	const service = "atoll-security"
	n := startNodeWith(t, filepath.Join(dir, "data"), nodeOptions{env: []string{
		"REGISTRY_AUTH_HTPASSWD_PATH=" + htpasswd,
		"REGISTRY_AUTH_BUILTINTOKEN_ENABLED=true",
		"REGISTRY_AUTH_BUILTINTOKEN_SERVICE=" + service,
	}})
	realm := n.URL() + "/auth/token"

	r := secDo(t, nil, "GET", n.URL()+"/v2/", secAnonymous, nil, nil)
	secExpectError(t, "anonymous GET /v2/", r, http.StatusUnauthorized, "UNAUTHORIZED")
	secChallenge(t, "anonymous GET /v2/", r, `Bearer realm="`+realm+`",service="`+service+`"`)
	r = secDo(t, nil, "GET", n.URL()+"/v2/team/app/manifests/v1", secAnonymous, nil, nil)
	secChallenge(t, "anonymous GET manifest", r, `Bearer realm="`+realm+`",service="`+service+`",scope="repository:team/app:pull"`)

	// The token endpoint, by hand.
	tokenURL := realm + "?service=" + service + "&scope=repository:team/app:pull,push"
	r = secDo(t, nil, "GET", tokenURL, secAlice, nil, nil)
	var tok struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &tok) != nil || tok.Token == "" || tok.ExpiresIn <= 0 {
		t.Fatalf("token as alice: %d %s", r.status, r.body)
	}
	bearer := http.Header{"Authorization": {"Bearer " + tok.Token}}
	if r := secDo(t, nil, "GET", n.URL()+"/v2/", secAnonymous, bearer, nil); r.status != http.StatusOK {
		t.Errorf("GET /v2/ with alice's token: %d %s", r.status, r.body)
	}
	if r := secDo(t, nil, "POST", n.URL()+"/v2/team/app/blobs/uploads/", secAnonymous, bearer, nil); r.status != http.StatusAccepted {
		t.Errorf("POST upload with a push token: %d %s", r.status, r.body)
	}
	// The token is for team/app only.
	r = secDo(t, nil, "POST", n.URL()+"/v2/team/other/blobs/uploads/", secAnonymous, bearer, nil)
	secExpectError(t, "POST upload to another repository with team/app's token", r, http.StatusUnauthorized, "UNAUTHORIZED")
	if ch := r.header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="insufficient_scope"`) {
		t.Errorf("challenge for a token lacking the scope: %q", ch)
	}
	r = secDo(t, nil, "GET", tokenURL, secUser{"alice", "wrong"}, nil, nil)
	secExpectError(t, "token with a bad password", r, http.StatusUnauthorized, "UNAUTHORIZED")
	// A token whose signature was tampered with.
	forged := http.Header{"Authorization": {"Bearer " + tok.Token[:len(tok.Token)-4] + "AAAA"}}
	r = secDo(t, nil, "GET", n.URL()+"/v2/", secAnonymous, forged, nil)
	secExpectError(t, "GET /v2/ with a tampered token", r, http.StatusUnauthorized, "UNAUTHORIZED")
	if ch := r.header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="invalid_token"`) {
		t.Errorf("challenge for a tampered token: %q", ch)
	}

	// go-containerregistry, given Basic credentials, fetches tokens itself.
	img := secImage(t)
	ref := secRef(t, n.Addr(), "team/app:v1", false)
	if err := remote.Write(ref, img, secRemote(secAlice, nil)...); err != nil {
		t.Fatalf("push as alice through the token server: %v", err)
	}
	if err := secPull(ref, img, secRemote(secBob, nil)); err != nil {
		t.Fatalf("pull as bob through the token server: %v", err)
	}
	if err := secPull(ref, img, secRemote(secAnonymous, nil)); secStatus(err) != http.StatusUnauthorized {
		t.Errorf("anonymous pull: %v, want 401", err)
	}
	if err := secPull(ref, img, secRemote(secUser{"bob", "wrong"}, nil)); secStatus(err) != http.StatusUnauthorized {
		t.Errorf("pull with a bad password: %v, want 401", err)
	}

	cfg := t.TempDir()
	if out, err := secCrane(t, cfg, "auth", "login", n.Addr(), "-u", secBob.name, "-p", secBob.password); err != nil {
		t.Fatalf("crane auth login: %v\n%s", err, out)
	}
	want, _ := img.Digest()
	if out, err := secCrane(t, cfg, "digest", "--insecure", n.Addr()+"/team/app:v1"); err != nil || strings.TrimSpace(out) != want.String() {
		t.Errorf("crane digest as bob through the token server: %q, %v; want %s", out, err, want)
	}
	if out, err := secCrane(t, cfg, "catalog", "--insecure", n.Addr()); err != nil || strings.TrimSpace(out) != "team/app" {
		t.Errorf("crane catalog as bob through the token server: %q, %v", out, err)
	}
}

// TestSecurityMemberEndpoints checks that a member's own endpoints, which
// members call with the cluster token, give nothing to a client of a
// single member with authentication and no cluster secret.
func TestSecurityMemberEndpoints(t *testing.T) {
	dir := t.TempDir()
	htpasswd := secHtpasswd(t, filepath.Join(dir, "htpasswd"), secAlice)
	n := startNodeWith(t, filepath.Join(dir, "data"), nodeOptions{env: []string{
		"REGISTRY_AUTH=htpasswd", "REGISTRY_AUTH_HTPASSWD_REALM=atoll", "REGISTRY_AUTH_HTPASSWD_PATH=" + htpasswd,
	}})
	blob := []byte("a layer pushed, its manifest not yet")
	d := digest.FromBytes(blob)
	r := secDo(t, nil, "POST", n.URL()+"/v2/team/app/blobs/uploads/?digest="+d.String(), secAlice, octetStream, blob)
	if r.status != http.StatusCreated {
		t.Fatalf("alice pushes a blob: %d %s", r.status, r.body)
	}
	bad := []secUser{secAnonymous, {"alice", "wrong"}}

	t.Run("blob endpoint", func(t *testing.T) {
		for _, u := range bad {
			r := secDo(t, nil, "GET", n.URL()+"/_atoll/v1/blobs/"+d.String(), u, nil, nil)
			if r.status < 400 || r.status >= 500 {
				t.Errorf("GET /_atoll/v1/blobs/%s as %q: %d with %d bytes, want a refusal (401)", d, u.name, r.status, len(r.body))
			}
		}
	})
	t.Run("gc endpoint", func(t *testing.T) {
		for _, u := range bad {
			r := secDo(t, nil, "POST", n.URL()+"/_atoll/v1/gc?grace=0s", u, nil, nil)
			if r.status < 400 || r.status >= 500 {
				t.Errorf("POST /_atoll/v1/gc?grace=0s as %q: %d %s, want a refusal (401)", u.name, r.status, r.body)
			}
		}
		if r := secDo(t, nil, "HEAD", n.URL()+"/v2/team/app/blobs/"+d.String(), secAlice, nil, nil); r.status != http.StatusOK {
			t.Errorf("alice's blob after the refused collections: %d", r.status)
		}
	})
}

// TestSecurityMemberEndpointsWithSecret runs a single member with htpasswd
// and a cluster secret, as SECURITY.md advises: its member endpoints then
// want the token, which `atoll gc --cluster-secret` sends.
func TestSecurityMemberEndpointsWithSecret(t *testing.T) {
	dir := t.TempDir()
	htpasswd := secHtpasswd(t, filepath.Join(dir, "htpasswd"), secAlice)
	const secret = "single member secret"
	n := startNodeWith(t, filepath.Join(dir, "data"), nodeOptions{env: []string{
		"REGISTRY_AUTH=htpasswd", "REGISTRY_AUTH_HTPASSWD_REALM=atoll", "REGISTRY_AUTH_HTPASSWD_PATH=" + htpasswd,
		"ATOLL_CLUSTER_SECRET=" + secret,
	}})
	blob := []byte("a layer pushed, its manifest not yet")
	d := digest.FromBytes(blob)
	if r := secDo(t, nil, "POST", n.URL()+"/v2/team/app/blobs/uploads/?digest="+d.String(), secAlice, octetStream, blob); r.status != http.StatusCreated {
		t.Fatalf("alice pushes a blob: %d %s", r.status, r.body)
	}
	for _, tok := range []string{"", "wrong", node.HTTPToken("another secret")} {
		h := http.Header{"Atoll-Cluster-Token": {tok}}
		for _, u := range []secUser{secAnonymous, secAlice} {
			if r := secDo(t, nil, "GET", n.URL()+"/_atoll/v1/blobs/"+d.String(), u, h, nil); r.status != http.StatusUnauthorized {
				t.Errorf("GET /_atoll/v1/blobs as %q with token %q: %d, want 401", u.name, tok, r.status)
			}
		}
		if r := secDo(t, nil, "POST", n.URL()+"/_atoll/v1/gc?grace=0s", secAnonymous, h, nil); r.status != http.StatusUnauthorized {
			t.Errorf("POST /_atoll/v1/gc anonymously with token %q: %d %s, want 401", tok, r.status, r.body)
		}
		// Without access rules every user is an administrator (admin.go):
		// alice's own credentials run a collection, whatever the token.
		if r := secDo(t, nil, "POST", n.URL()+"/_atoll/v1/gc?grace=0s&dry-run=true", secAlice, h, nil); r.status != http.StatusOK {
			t.Errorf("POST /_atoll/v1/gc as administrator alice with token %q: %d %s, want 200", tok, r.status, r.body)
		}
	}
	if r := secDo(t, nil, "HEAD", n.URL()+"/v2/team/app/blobs/"+d.String(), secAlice, nil, nil); r.status != http.StatusOK {
		t.Errorf("alice's blob after the refused collections: %d", r.status)
	}
	out, err := exec.Command(atollBin, "gc", "--addr", n.URL(), "--dry-run", "--cluster-secret", secret).CombinedOutput()
	if err != nil {
		t.Errorf("atoll gc --cluster-secret: %v\n%s", err, out)
	}
}
