package oci

import (
	"errors"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// The spec's grammars as regular expressions, and go-digest's parser:
// the references the hand-written checks must agree with.
var (
	nameGrammar = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagGrammar  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

func nameByGrammar(s string) bool { return len(s) <= MaxNameLength && nameGrammar.MatchString(s) }

func digestByGoDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", err
	}
	if a := d.Algorithm(); a != digest.SHA256 && a != digest.SHA512 {
		return "", digest.ErrDigestUnsupported
	}
	return d, nil
}

// agree fails t unless the hand-written checks judge s as the references do.
func agree(t *testing.T, s string) {
	t.Helper()
	if got, want := ValidName(s), nameByGrammar(s); got != want {
		t.Fatalf("ValidName(%q) = %v, the grammar says %v", s, got, want)
	}
	if got, want := ValidTag(s), tagGrammar.MatchString(s); got != want {
		t.Fatalf("ValidTag(%q) = %v, the grammar says %v", s, got, want)
	}
	got, gotErr := ParseDigest(s)
	want, wantErr := digestByGoDigest(s)
	if got != want || !errors.Is(gotErr, wantErr) {
		t.Fatalf("ParseDigest(%q) = %q, %v; go-digest says %q, %v", s, got, gotErr, want, wantErr)
	}
}

func TestNamesAgreeWithGrammar(t *testing.T) {
	hex64 := strings.Repeat("0a", 32)
	for _, s := range []string{
		"", "a", "a/b", "a//b", "/a", "a/", "a.b", "a..b", "a_b", "a__b", "a___b", "a-b", "a---b", "a-.b",
		"A", "a.", ".a", "library/ubuntu", strings.Repeat("a", 255), strings.Repeat("a", 256),
		"latest", "_x", "-x", ".x", "v1.0-rc_1", strings.Repeat("t", 128), strings.Repeat("t", 129),
		"sha256:" + hex64, "sha512:" + hex64 + hex64, "sha256:" + hex64[1:], "sha256:" + strings.ToUpper(hex64),
		"sha384:" + hex64 + hex64[:32], "md5:abc", "sha256:", ":abc", "sha256", "sha256:" + hex64 + "\n",
		"sha256+b64:abc", "SHA256:" + hex64,
	} {
		agree(t, s)
	}
	// Random strings over the bytes the grammars care about.
	alphabet := "ab09AZ._-/:+\x80 "
	r := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		agree(t, string(b))
		agree(t, "sha256:"+strings.Repeat(string(b), 64/max(len(b), 1)))
	}
}

func FuzzNamesAgreeWithGrammar(f *testing.F) {
	f.Add("library/ubuntu")
	f.Add("sha256:" + strings.Repeat("0", 64))
	f.Fuzz(agree)
}
