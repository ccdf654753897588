package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// signingKey returns the built-in token server's key: read from path,
// else derived from seed, else generated.
func signingKey(path string, seed []byte) (*ecdsa.PrivateKey, error) {
	switch {
	case path != "":
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("auth: signing key: %w", err)
		}
		k, err := parseECKey(data)
		if err != nil {
			return nil, fmt.Errorf("auth: signing key %s: %w", path, err)
		}
		return k, nil
	case len(seed) > 0:
		return deriveKey(seed)
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func parseECKey(data []byte) (*ecdsa.PrivateKey, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no EC PRIVATE KEY or PRIVATE KEY block")
		}
		var k any
		var err error
		switch b.Type {
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok || ec.Curve != elliptic.P256() {
			return nil, errors.New("not an ECDSA P-256 key")
		}
		return ec, nil
	}
}

// deriveKey derives a P-256 key from seed with HKDF-SHA256, so members
// sharing a secret share the key without shipping it.
func deriveKey(seed []byte) (*ecdsa.PrivateKey, error) {
	for i := 0; i < 100; i++ {
		d, err := hkdf.Key(sha256.New, seed, nil, fmt.Sprintf("atoll token signing key %d", i), 32)
		if err != nil {
			return nil, err
		}
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d); err == nil {
			return k, nil // fails only for a scalar >= the order: ~2^-32
		}
	}
	return nil, errors.New("auth: cannot derive a signing key")
}

// thumbprint is the RFC 7638 JWK thumbprint of an ECDSA or RSA public key:
// the built-in key's kid, and one way a bundle key is named.
func thumbprint(pub crypto.PublicKey) (string, error) {
	var jwk any
	enc := base64.RawURLEncoding
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		raw, err := k.Bytes()
		if err != nil {
			return "", err
		}
		n := (len(raw) - 1) / 2
		jwk = struct {
			Crv string `json:"crv"`
			Kty string `json:"kty"`
			X   string `json:"x"`
			Y   string `json:"y"`
		}{k.Curve.Params().Name, "EC", enc.EncodeToString(raw[1 : 1+n]), enc.EncodeToString(raw[1+n:])}
	case *rsa.PublicKey:
		e := []byte{byte(k.E >> 24), byte(k.E >> 16), byte(k.E >> 8), byte(k.E)}
		for len(e) > 1 && e[0] == 0 {
			e = e[1:]
		}
		jwk = struct {
			E   string `json:"e"`
			Kty string `json:"kty"`
			N   string `json:"n"`
		}{enc.EncodeToString(e), "RSA", enc.EncodeToString(k.N.Bytes())}
	default:
		return "", fmt.Errorf("unsupported key type %T", pub)
	}
	b, err := json.Marshal(jwk)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return enc.EncodeToString(sum[:]), nil
}

// libtrustKeyID is docker/libtrust's key id, which registry:2 token
// servers put in kid: the first 240 bits of the SHA-256 of the DER public
// key, base32, in twelve groups of four joined by ':'.
func libtrustKeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	s := strings.TrimRight(base32.StdEncoding.EncodeToString(sum[:30]), "=")
	var groups []string
	for i := 0; i < len(s); i += 4 {
		groups = append(groups, s[i:i+4])
	}
	return strings.Join(groups, ":"), nil
}

// trustedKeys are the external token server's: the certificates of
// RootCertBundle, as roots for an x5c chain and, by kid, as bare keys.
type trustedKeys struct {
	roots *x509.CertPool
	byKid map[string]crypto.PublicKey
}

func loadTrustedKeys(path string) (*trustedKeys, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: rootcertbundle: %w", err)
	}
	t := &trustedKeys{roots: x509.NewCertPool(), byKid: map[string]crypto.PublicKey{}}
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auth: rootcertbundle %s: %w", path, err)
		}
		t.roots.AddCert(cert)
		for _, id := range []func(crypto.PublicKey) (string, error){thumbprint, libtrustKeyID} {
			if kid, err := id(cert.PublicKey); err == nil {
				t.byKid[kid] = cert.PublicKey
			}
		}
	}
	if len(t.byKid) == 0 {
		return nil, fmt.Errorf("auth: rootcertbundle %s: no usable certificate", path)
	}
	return t, nil
}

// key returns the public key that must have signed a token with header h:
// the leaf of an x5c chain that verifies to a bundle root, else the bundle
// key named by kid.
func (t *trustedKeys) key(h jwtHeader, now time.Time) (crypto.PublicKey, error) {
	if len(h.X5c) == 0 {
		if k, ok := t.byKid[h.Kid]; ok && h.Kid != "" {
			return k, nil
		}
		return nil, fmt.Errorf("unknown signing key %q", h.Kid)
	}
	if len(h.X5c) > 8 {
		return nil, errors.New("x5c chain too long")
	}
	var chain []*x509.Certificate
	for _, s := range h.X5c {
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("x5c: %w", err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("x5c: %w", err)
		}
		chain = append(chain, cert)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots: t.roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("x5c: %w", err)
	}
	return chain[0].PublicKey, nil
}
