// Package oci is the OCI data model shared by the HTTP API and the cluster:
// repository names, references, media types, and manifest parsing and
// validation. It is a leaf: it imports nothing of atoll's.
package oci

import (
	_ "crypto/sha256" // digest.SHA256
	_ "crypto/sha512" // digest.SHA512
	"regexp"
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

var (
	// nameRE is the spec's repository name grammar.
	nameRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// ValidName reports whether name is a valid repository name.
func ValidName(name string) bool {
	return len(name) <= MaxNameLength && nameRE.MatchString(name)
}

// ValidTag reports whether tag is a valid tag.
func ValidTag(tag string) bool {
	return len(tag) <= MaxTagLength && tagRE.MatchString(tag)
}

// ParseDigest parses a digest of a supported algorithm (sha256, sha512).
func ParseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", err
	}
	if a := d.Algorithm(); a != digest.SHA256 && a != digest.SHA512 {
		return "", digest.ErrDigestUnsupported
	}
	return d, nil
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
