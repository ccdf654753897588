// Package oci is the OCI data model shared by the HTTP API and the cluster:
// repository names, references, media types, and manifest parsing and
// validation. It is a leaf: it imports nothing of atoll's.
package oci

import (
	_ "crypto/sha256" // digest.SHA256
	_ "crypto/sha512" // digest.SHA512
	"strings"

	"github.com/opencontainers/go-digest"
)

// Limits from the distribution spec.
const (
	// MaxNameLength bounds a repository name, with its slashes.
	MaxNameLength = 255
	// MaxTagLength bounds a tag.
	MaxTagLength = 128
)

// ValidName reports whether name is a valid repository name: the spec's
// grammar, [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*,
// checked by hand (a regular expression cost a manifest GET more than
// its lookup).
func ValidName(name string) bool {
	if name == "" || len(name) > MaxNameLength {
		return false
	}
	for c := range strings.SplitSeq(name, "/") {
		if !validComponent(c) {
			return false
		}
	}
	return true
}

// validComponent reports whether c is one component of a repository
// name: runs of [a-z0-9] joined by one separator each, ".", "_", "__" or
// any number of "-".
func validComponent(c string) bool {
	if c == "" || !lowerAlnum(c[0]) || !lowerAlnum(c[len(c)-1]) {
		return false
	}
	for i := 1; i < len(c); {
		if lowerAlnum(c[i]) {
			i++
			continue
		}
		j := i
		for j < len(c) && !lowerAlnum(c[j]) {
			j++
		}
		switch sep := c[i:j]; {
		case sep == "." || sep == "_" || sep == "__":
		case strings.Trim(sep, "-") == "":
		default:
			return false
		}
		i = j
	}
	return true
}

func lowerAlnum(b byte) bool { return 'a' <= b && b <= 'z' || '0' <= b && b <= '9' }

// ValidTag reports whether tag is a valid tag: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
func ValidTag(tag string) bool {
	if tag == "" || len(tag) > MaxTagLength || tag[0] == '.' || tag[0] == '-' {
		return false
	}
	for i := 0; i < len(tag); i++ {
		b := tag[i]
		if !lowerAlnum(b) && !('A' <= b && b <= 'Z') && b != '_' && b != '.' && b != '-' {
			return false
		}
	}
	return true
}

// ParseDigest parses a digest of a supported algorithm (sha256, sha512),
// with go-digest's errors, by hand: its regular expressions cost a
// manifest GET by digest more than the rest of the request.
func ParseDigest(s string) (digest.Digest, error) {
	alg, enc, ok := strings.Cut(s, ":")
	var n int
	switch digest.Algorithm(alg) {
	case digest.SHA256:
		n = 64
	case digest.SHA512:
		n = 128
	default:
		if _, err := digest.Parse(s); err != nil {
			return "", err
		}
		return "", digest.ErrDigestUnsupported
	}
	switch {
	case !ok || enc == "":
		return "", digest.ErrDigestInvalidFormat
	case len(enc) != n:
		return "", digest.ErrDigestInvalidLength
	}
	for i := 0; i < len(enc); i++ {
		if b := enc[i]; !('0' <= b && b <= '9' || 'a' <= b && b <= 'f') {
			return "", digest.ErrDigestInvalidFormat
		}
	}
	return digest.Digest(s), nil
}

// Reference is a manifest reference: a tag or a digest, never both.
type Reference struct {
	Tag    string
	Digest digest.Digest
}

// ParseReference parses a tag or a digest. ok is false when s is neither.
func ParseReference(s string) (ref Reference, ok bool) {
	if strings.Contains(s, ":") {
		d, err := ParseDigest(s)
		return Reference{Digest: d}, err == nil
	}
	return Reference{Tag: s}, ValidTag(s)
}

func (r Reference) String() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}
