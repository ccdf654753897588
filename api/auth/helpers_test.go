package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// writeHtpasswd writes users (name -> password) as an htpasswd file with
// cheap bcrypt hashes and returns its path.
func writeHtpasswd(t *testing.T, path string, users map[string]string) string {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "htpasswd")
	}
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, u := range names {
		h, err := bcrypt.GenerateFromPassword([]byte(users[u]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// clock is a settable time source for Authenticator.now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newAuth builds an Authenticator on a fake clock.
func newAuth(t *testing.T, cfg Config) (*Authenticator, *clock) {
	t.Helper()
	a, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now()}
	a.now = c.now
	return a, c
}

// serve runs a.Wrap over a handler that answers 200 "<user>|<query>".
func serve(t *testing.T, a *Authenticator) *httptest.Server {
	t.Helper()
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := FromContext(r.Context())
		if !ok {
			http.Error(w, "no identity", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%s|%s", id.User, r.URL.RawQuery)
	})
	mux := http.NewServeMux()
	mux.Handle("/v2/", a.Wrap(next))
	mux.Handle(TokenPath, a.TokenHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// do sends one request; header holds name, value pairs.
func do(t *testing.T, method, url string, body []byte, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func basic(user, pass string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

// signToken signs c with an arbitrary header (alg ES256 with a P-256 key,
// or RS256 with an RSA key), for tokens the built-in server would not make.
func signToken(t *testing.T, h jwtHeader, c *claims, key crypto.Signer) string {
	t.Helper()
	hb, _ := json.Marshal(h)
	cb, _ := json.Marshal(c)
	signed := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
	sum := sha256.Sum256([]byte(signed))
	var sig []byte
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	case *rsa.PrivateKey:
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:]); err != nil {
			t.Fatal(err)
		}
	}
	return signed + "." + b64.EncodeToString(sig)
}

// tokenClaims are valid claims for issuer and service at now.
func tokenClaims(issuer, service, sub string, now time.Time, access ...accessClaim) *claims {
	return &claims{
		Issuer: issuer, Subject: sub, Audience: audience{service},
		Expiry: numericDate(now.Add(time.Minute).Unix()), NotBefore: numericDate(now.Unix()),
		IssuedAt: numericDate(now.Unix()), Access: access,
	}
}
