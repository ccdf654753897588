package metadb

import (
	"context"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/storage"
)

// TestReferrersMatchSets adds and drops random referrers, settling at
// random points as commits do, and checks each subject's list against
// sets after every settle.
func TestReferrersMatchSets(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	s := newState()
	r := s.repos.get("a/b", true)
	want := map[dkey]map[dkey]bool{}
	for step := range 5000 {
		subject, k := dkey{byte(rng.IntN(8))}, dkey{1, byte(rng.IntN(64))}
		if rng.IntN(3) == 0 {
			s.dropReferrer(r, subject, k)
			delete(want[subject], k)
		} else if !want[subject][k] { // apply adds a pair only when absent
			s.addReferrer(r, subject, k)
			if want[subject] == nil {
				want[subject] = map[dkey]bool{}
			}
			want[subject][k] = true
		}
		if rng.IntN(10) > 0 && step < 4999 {
			continue
		}
		s.settle()
		if r.unsorted || len(s.unsorted) != 0 {
			t.Fatalf("step %d: still unsorted after settle", step)
		}
		for i := range 8 {
			subject := dkey{byte(i)}
			var got []dkey
			for _, ref := range r.referrersOf(subject) {
				got = append(got, ref.manifest)
			}
			ks := slices.SortedFunc(maps.Keys(want[subject]), func(a, b dkey) int { return compareReferrers(referrer{manifest: a}, referrer{manifest: b}) })
			if !slices.Equal(got, ks) {
				t.Fatalf("step %d: referrers of %v = %v, want %v", step, subject[0], got, ks)
			}
		}
	}
}

// TestReferrersDescriptors: the referrers API lists each referrer's
// descriptor as it was pushed, whether the index keeps it as type numbers
// (no fields but media type, digest, size, artifact type) or whole
// (annotations, a digest that is not canonical), before and after a
// reopen rebuilds the index from disk.
func TestReferrersDescriptors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	s, err := Open(path, Options{Reserve: -1, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	subject := manifest("subject", "")
	plain := manifest("plain", subject.Descriptor.Digest)
	plain.Descriptor.ArtifactType = "application/example.sig"
	rich := manifest("rich", subject.Descriptor.Digest)
	rich.Descriptor.ArtifactType = "application/example.sbom"
	rich.Descriptor.Annotations = map[string]string{"k": "v"}
	odd := manifest("odd", subject.Descriptor.Digest)
	odd.Descriptor.Digest = digest.Digest("sha256:" + strings.ToUpper(odd.Descriptor.Digest.Encoded()))
	for _, m := range []*storage.Manifest{subject, plain, rich, odd} {
		if err := s.PutManifest(context.Background(), "a/b", m, ""); err != nil {
			t.Fatal(err)
		}
	}
	want := []v1.Descriptor{plain.Descriptor, rich.Descriptor, odd.Descriptor}
	slices.SortFunc(want, func(a, b v1.Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	for _, when := range []string{"written", "reopened"} {
		if got := s.Referrers("a/b", subject.Descriptor.Digest); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: referrers\n%+v\nwant\n%+v", when, got, want)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if s, err = Open(path, Options{Reserve: -1, NoSync: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
