package metadb

import (
	_ "crypto/sha512" // digest.SHA512
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/oci"
)

func TestKeyOf(t *testing.T) {
	plain := digest.FromString("x")
	k, ok := keyOf(plain)
	if !ok || k.format() != plain {
		t.Fatalf("keyOf(%s) = %x, %v; formats back as %s", plain, k, ok, k.format())
	}
	odd := []digest.Digest{
		digest.SHA512.FromString("x"),
		digest.Digest(strings.ToUpper(string(plain))),
		digest.Digest("sha256:" + strings.ToUpper(plain.Encoded())),
		"sha256:zz",
	}
	s := newState()
	for _, d := range odd {
		k, ok := keyOf(d)
		if ok || k == dkeyOf(plain) {
			t.Errorf("keyOf(%s) = %x, %v: want the hash of the text", d, k, ok)
		}
		if got := s.digestOf(s.key(d)); got != d {
			t.Errorf("digestOf(key(%s)) = %s", d, got)
		}
	}
	if got := s.digestOf(dkeyOf(plain)); got != plain {
		t.Errorf("digestOf(key(%s)) = %s", plain, got)
	}
}

// The index keeps, of a manifest linked by several repositories, each of
// them, one at a time unlinked.
func TestSharedLinks(t *testing.T) {
	s := newState()
	d := digest.SHA512.FromString("m")
	repos := []string{"c", "a", "b"}
	for _, name := range repos {
		s.linkManifest(s.repos.get(name, true), d)
	}
	names := func() []string {
		var out []string
		k := dkeyOf(d)
		s.eachRepo(k, s.records[k], func(r *repo) bool { out = append(out, r.name); return false })
		return out
	}
	if got := names(); strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("linked by %v", got)
	}
	for i, want := range []string{"b,c", "c", ""} {
		s.unlinkManifest(s.repos.byName[[]string{"a", "b", "c"}[i]], d, 1)
		if got := strings.Join(names(), ","); got != want {
			t.Fatalf("after %d unlinks, linked by %q, want %q", i+1, got, want)
		}
	}
	if _, ok := s.records[dkeyOf(d)]; ok {
		t.Errorf("an unstored record linked by none is kept")
	}
	if len(s.shared) != 0 {
		t.Errorf("shared left: %v", s.shared)
	}
}

// A record's media type reads back the same, common or not, without an
// allocation for the common ones.
func TestMediaTypeString(t *testing.T) {
	for _, mt := range []string{"application/vnd.oci.image.manifest.v1+json", oci.MediaTypeDockerList, "application/x-other"} {
		if got := mediaTypeString([]byte(mt)); got != mt {
			t.Errorf("mediaTypeString(%q) = %q", mt, got)
		}
	}
	b := []byte(oci.MediaTypeDockerManifest)
	if n := testing.AllocsPerRun(10, func() { _ = mediaTypeString(b) }); n != 0 {
		t.Errorf("mediaTypeString allocates %v times for a common type", n)
	}
}
