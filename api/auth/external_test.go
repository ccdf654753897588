package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newCA makes a CA and writes its certificate as a bundle file.
func newCA(t *testing.T) (bundle string, ca *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca = newCert(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "token CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, nil, key.Public(), key)
	bundle = filepath.Join(t.TempDir(), "bundle.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return bundle, ca, key
}

// newCert signs tmpl for pub with parent's key (self-signed when parent is
// nil).
func newCert(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestExternalTokens(t *testing.T) {
	bundle, ca, caKey := newCA(t)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := newCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "signer"}, KeyUsage: x509.KeyUsageDigitalSignature},
		ca, leafKey.Public(), caKey)
	_, otherCA, otherKey := newCA(t)
	rogue := newCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "signer"}}, otherCA, leafKey.Public(), otherKey)

	// A second bundle certificate with an RSA key, named by kid only.
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaCert := newCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: "rsa signer"}}, nil, rsaKey.Public(), rsaKey)
	f, _ := os.OpenFile(bundle, os.O_APPEND|os.O_WRONLY, 0)
	_ = pem.Encode(f, &pem.Block{Type: "CERTIFICATE", Bytes: rsaCert.Raw})
	f.Close()
	rsaKid, _ := libtrustKeyID(rsaKey.Public())
	rsaThumb, _ := thumbprint(rsaKey.Public())

	a, clk := newAuth(t, Config{Token: TokenConfig{Realm: "https://auth.example/token", Service: "reg", Issuer: "auth", RootCertBundle: bundle}})
	srv := serve(t, a)
	now := clk.now()
	x5c := func(certs ...*x509.Certificate) []string {
		var out []string
		for _, c := range certs {
			out = append(out, base64.StdEncoding.EncodeToString(c.Raw))
		}
		return out
	}
	pull := accessClaim{Type: "repository", Name: "team/app", Actions: []string{"pull"}}
	good := tokenClaims("auth", "reg", "alice", now, pull)
	expired := tokenClaims("auth", "reg", "alice", now.Add(-time.Hour), pull)
	for _, tt := range []struct {
		name   string
		header jwtHeader
		claims *claims
		key    crypto.Signer
		status int
	}{
		{"x5c leaf chained to bundle", jwtHeader{Alg: "ES256", Typ: "JWT", X5c: x5c(leaf)}, good, leafKey, 200},
		{"x5c with the CA too", jwtHeader{Alg: "ES256", X5c: x5c(leaf, ca)}, good, leafKey, 200},
		{"RSA bundle key by libtrust kid", jwtHeader{Alg: "RS256", Kid: rsaKid}, good, rsaKey, 200},
		{"RSA bundle key by thumbprint", jwtHeader{Alg: "RS256", Kid: rsaThumb}, good, rsaKey, 200},
		{"x5c from another CA", jwtHeader{Alg: "ES256", X5c: x5c(rogue)}, good, leafKey, 401},
		{"x5c leaf, other signer", jwtHeader{Alg: "ES256", X5c: x5c(leaf)}, good, otherKey, 401},
		{"unknown kid", jwtHeader{Alg: "ES256", Kid: "nope"}, good, leafKey, 401},
		{"alg confusion", jwtHeader{Alg: "ES256", Kid: rsaKid}, good, rsaKey, 401},
		{"alg none", jwtHeader{Alg: "none", X5c: x5c(leaf)}, good, leafKey, 401},
		{"expired", jwtHeader{Alg: "ES256", X5c: x5c(leaf)}, expired, leafKey, 401},
		{"wrong issuer", jwtHeader{Alg: "ES256", X5c: x5c(leaf)}, tokenClaims("evil", "reg", "alice", now, pull), leafKey, 401},
		{"wrong audience", jwtHeader{Alg: "ES256", X5c: x5c(leaf)}, tokenClaims("auth", "other", "alice", now, pull), leafKey, 401},
		{"scope not granted", jwtHeader{Alg: "ES256", X5c: x5c(leaf)},
			tokenClaims("auth", "reg", "alice", now, accessClaim{Type: "repository", Name: "team/other", Actions: []string{"pull"}}), leafKey, 401},
	} {
		tok := signToken(t, tt.header, tt.claims, tt.key)
		resp, body := do(t, "GET", srv.URL+"/v2/team/app/manifests/v1", nil, "Authorization", "Bearer "+tok)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: %s %s", tt.name, resp.Status, body)
		}
		if tt.status == 200 && body != "alice|" {
			t.Errorf("%s: identity %q", tt.name, body)
		}
	}
	// A token lacking the scope gets insufficient_scope so the client asks
	// the token server again; pushing with a pull token likewise.
	tok := signToken(t, jwtHeader{Alg: "ES256", X5c: x5c(leaf)}, good, leafKey)
	resp, _ := do(t, "PUT", srv.URL+"/v2/team/app/manifests/v1", nil, "Authorization", "Bearer "+tok)
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || !strings.HasSuffix(ch, `scope="repository:team/app:push",error="insufficient_scope"`) {
		t.Errorf("push with a pull token: %s %q", resp.Status, ch)
	}
}
