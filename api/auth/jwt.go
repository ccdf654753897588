package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	_ "crypto/sha512" // SHA-384 and SHA-512 for ES384/512, RS384/512
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
)

// A JSON Web Token (RFC 7519) in JWS compact form (RFC 7515), as the
// Docker token authentication spec uses it. Signing is ES256 only;
// verification takes ES256/384/512 and RS256/384/512.

// jwtHeader is the JOSE header.
type jwtHeader struct {
	Alg string   `json:"alg"`
	Typ string   `json:"typ,omitempty"`
	Kid string   `json:"kid,omitempty"`
	X5c []string `json:"x5c,omitempty"`
}

// claims are a registry token's claims.
type claims struct {
	Issuer    string        `json:"iss"`
	Subject   string        `json:"sub"`
	Audience  audience      `json:"aud"`
	Expiry    numericDate   `json:"exp"`
	NotBefore numericDate   `json:"nbf,omitempty"`
	IssuedAt  numericDate   `json:"iat,omitempty"`
	ID        string        `json:"jti,omitempty"`
	Access    []accessClaim `json:"access"`
}

// accessClaim is one resource a token grants actions on.
type accessClaim struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// numericDate is seconds since the epoch; issuers may send a fraction.
type numericDate int64

func (d *numericDate) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	if f < 0 || f > 1<<40 {
		return errors.New("date out of range")
	}
	*d = numericDate(f)
	return nil
}

// audience is a string or an array of strings (RFC 7519 4.1.3).
type audience []string

func (a audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = audience{s}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(a))
}

// grants reports whether the token grants action on repository repo.
func (c *claims) grants(repo, action string) bool {
	for _, ac := range c.Access {
		if ac.Type == "repository" && ac.Name == repo &&
			(slices.Contains(ac.Actions, action) || slices.Contains(ac.Actions, ActionAll)) {
			return true
		}
	}
	return false
}

var b64 = base64.RawURLEncoding

// signJWT signs c with key (ES256, P-256) under key id kid.
func signJWT(c *claims, key *ecdsa.PrivateKey, kid string) (string, error) {
	h, err := json.Marshal(jwtHeader{Alg: "ES256", Typ: "JWT", Kid: kid})
	if err != nil {
		return "", err
	}
	p, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signed := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	sum := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + b64.EncodeToString(sig), nil
}

// maxTokenSize bounds what is parsed; an x5c chain of a few certificates
// fits comfortably.
const maxTokenSize = 64 << 10

// parseJWT splits a compact JWS and decodes its header and claims, without
// checking the signature. signed is the signing input, sig the signature.
func parseJWT(token string) (h jwtHeader, c claims, signed string, sig []byte, err error) {
	if len(token) > maxTokenSize {
		return h, c, "", nil, errors.New("token too large")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return h, c, "", nil, errors.New("not a compact JWS")
	}
	hb, err1 := b64.DecodeString(parts[0])
	pb, err2 := b64.DecodeString(parts[1])
	sig, err3 := b64.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return h, c, "", nil, fmt.Errorf("bad base64url: %w", err)
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return h, c, "", nil, fmt.Errorf("header: %w", err)
	}
	if err := json.Unmarshal(pb, &c); err != nil {
		return h, c, "", nil, fmt.Errorf("claims: %w", err)
	}
	return h, c, parts[0] + "." + parts[1], sig, nil
}

// verifySignature checks sig over signed with pub under alg. The key type
// and size must fit the algorithm: no "none", no HMAC, no confusion.
func verifySignature(alg string, pub crypto.PublicKey, signed string, sig []byte) error {
	hashes := map[string]crypto.Hash{
		"ES256": crypto.SHA256, "ES384": crypto.SHA384, "ES512": crypto.SHA512,
		"RS256": crypto.SHA256, "RS384": crypto.SHA384, "RS512": crypto.SHA512,
	}
	hash, ok := hashes[alg]
	if !ok {
		return fmt.Errorf("unsupported alg %q", alg)
	}
	hh := hash.New()
	hh.Write([]byte(signed))
	sum := hh.Sum(nil)
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		curves := map[string]string{"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
		if k.Curve == nil || k.Curve.Params().Name != curves[alg] {
			return fmt.Errorf("alg %s does not fit the key", alg)
		}
		n := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n {
			return errors.New("bad signature length")
		}
		r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
		if !ecdsa.Verify(k, sum, r, s) {
			return errors.New("bad signature")
		}
		return nil
	case *rsa.PublicKey:
		if !strings.HasPrefix(alg, "RS") {
			return fmt.Errorf("alg %s does not fit the key", alg)
		}
		if err := rsa.VerifyPKCS1v15(k, hash, sum, sig); err != nil {
			return errors.New("bad signature")
		}
		return nil
	}
	return fmt.Errorf("unsupported key type %T", pub)
}

// clockSkew is how far apart the token issuer's clock and ours may be.
const clockSkew = 60 * time.Second

// check checks issuer, audience and validity period.
func (c *claims) check(issuer, service string, now time.Time) error {
	t := numericDate(now.Unix())
	skew := numericDate(clockSkew / time.Second)
	switch {
	case c.Issuer != issuer:
		return fmt.Errorf("issuer %q is not trusted", c.Issuer)
	case !slices.Contains(c.Audience, service):
		return fmt.Errorf("audience %q is not %q", []string(c.Audience), service)
	case c.Expiry == 0 || t > c.Expiry+skew:
		return errors.New("token expired")
	case c.NotBefore != 0 && t < c.NotBefore-skew:
		return errors.New("token not valid yet")
	case c.IssuedAt != 0 && t < c.IssuedAt-skew:
		return errors.New("token issued in the future")
	}
	return nil
}
