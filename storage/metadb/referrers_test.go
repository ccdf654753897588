package metadb

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestReferrersMatchSets adds and drops random referrers, settling at
// random points as commits do, and checks each subject's list against
// sets after every settle.
func TestReferrersMatchSets(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	s := newState()
	r := s.repo("a/b", true)
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
