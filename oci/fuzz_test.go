package oci

import (
	_ "crypto/sha512" // as in the atoll binary, where TLS links it: sha512 digests parse
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// manifestTypes are the media types FuzzParseManifest parses each input
// as: the content's own, the four stored ones, and one never stored.
var manifestTypes = []string{"", MediaTypeImageManifest, MediaTypeImageIndex, MediaTypeDockerManifest,
	MediaTypeDockerList, "application/vnd.docker.distribution.manifest.v1+json"}

// FuzzParseManifest: Parse never panics; what it accepts is consistent
// with its media type, and every descriptor in it has a valid digest.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"` + EmptyJSONDigest + `","size":2,"data":"e30="},"layers":[]}`))
	f.Fuzz(func(t *testing.T, content []byte) {
		for _, mt := range manifestTypes {
			m, err := Parse(mt, content)
			if err != nil {
				if m != nil {
					t.Fatalf("Parse(%q) returned a manifest and %v", mt, err)
				}
				continue
			}
			if !IsManifestType(m.MediaType) || mt != "" && m.MediaType != mt {
				t.Fatalf("Parse(%q) accepted media type %q", mt, m.MediaType)
			}
			if IsIndexType(m.MediaType) != (m.Config == nil) || IsIndexType(m.MediaType) && m.Layers != nil {
				t.Fatalf("Parse(%q): %s with config %v, %d layers", mt, m.MediaType, m.Config, len(m.Layers))
			}
			descs := append(append([]v1.Descriptor{}, m.Layers...), m.Manifests...)
			for _, d := range []*v1.Descriptor{m.Config, m.Subject} {
				if d != nil {
					descs = append(descs, *d)
				}
			}
			descs = append(descs, m.Blobs()...)
			for _, d := range descs {
				if _, err := ParseDigest(d.Digest.String()); err != nil || d.Size < 0 || !ValidMediaType(d.MediaType) {
					t.Fatalf("Parse(%q) accepted descriptor %+v: %v", mt, d, err)
				}
			}
			desc := m.Descriptor(digest.FromBytes(content), int64(len(content)))
			if desc.MediaType != m.MediaType || desc.Size != int64(len(content)) {
				t.Fatalf("Descriptor: %+v", desc)
			}
		}
	})
}

// FuzzParseReference: what ParseReference accepts is exactly one of a valid
// tag or a supported digest, and prints back as the input.
func FuzzParseReference(f *testing.F) {
	f.Add("latest")
	f.Fuzz(func(t *testing.T, s string) {
		ref, ok := ParseReference(s)
		if !ok {
			return
		}
		switch {
		case (ref.Tag == "") == (ref.Digest == ""):
			t.Fatalf("ParseReference(%q) = %+v: want one of tag or digest", s, ref)
		case ref.Tag != "" && (!ValidTag(ref.Tag) || len(ref.Tag) > MaxTagLength || strings.ContainsAny(ref.Tag, ":/@")):
			t.Fatalf("ParseReference(%q) accepted tag %q", s, ref.Tag)
		case ref.Digest != "" && ref.Digest.Validate() != nil:
			t.Fatalf("ParseReference(%q) accepted digest %q", s, ref.Digest)
		case ref.String() != s:
			t.Fatalf("ParseReference(%q).String() = %q", s, ref.String())
		}
		if again, ok := ParseReference(ref.String()); !ok || again != ref {
			t.Fatalf("reparse of %q: %+v %v", s, again, ok)
		}
	})
}

// FuzzValidName: a valid repository name is short, lower case, and made of
// non-empty components that start and end with a letter or digit.
func FuzzValidName(f *testing.F) {
	f.Add("library/ubuntu")
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidName(s) {
			return
		}
		if len(s) > MaxNameLength || s == "" || strings.Contains(s, "..") || strings.Contains(s, "//") ||
			strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") || s != strings.ToLower(s) {
			t.Fatalf("ValidName(%q)", s)
		}
		for _, c := range strings.Split(s, "/") {
			if c == "." || c == ".." || !alnum(c[0]) || !alnum(c[len(c)-1]) {
				t.Fatalf("ValidName(%q): component %q", s, c)
			}
			for i := 0; i < len(c); i++ {
				if !alnum(c[i]) && !strings.ContainsRune("._-", rune(c[i])) {
					t.Fatalf("ValidName(%q): byte %q", s, c[i])
				}
			}
		}
	})
}

func alnum(b byte) bool { return 'a' <= b && b <= 'z' || '0' <= b && b <= '9' }
