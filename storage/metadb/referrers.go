package metadb

import (
	"bytes"
	"slices"
)

// A repository's referrers are a slice of (subject, manifest) pairs,
// sorted, in memory the garbage collector does not scan: a map of subjects
// to sets of manifests cost each repository a scanned map group, 43 MiB
// of the 93 MiB a collection marked at a million manifests.
//
// apply appends a new pair and leaves the sorting to state.settle, at the
// end of the load or of the commit (as with names): a load that inserted
// each pair in place would move the pairs after it, once per pair.
// Readers, under the store's read lock, always see them sorted.

// A referrer is a linked manifest of a repository that refers to subject.
type referrer struct{ subject, manifest dkey }

func compareReferrers(a, b referrer) int {
	if c := bytes.Compare(a.subject[:], b.subject[:]); c != 0 {
		return c
	}
	return bytes.Compare(a.manifest[:], b.manifest[:])
}

// addReferrer notes that manifest k of r refers to subject.
func (s *state) addReferrer(r *repo, subject, k dkey) {
	r.referrers = append(r.referrers, referrer{subject, k})
	if !r.unsorted {
		r.unsorted = true
		s.unsorted = append(s.unsorted, r)
	}
}

// dropReferrer forgets that manifest k of r refers to subject.
func (s *state) dropReferrer(r *repo, subject, k dkey) {
	ref := referrer{subject, k}
	if r.unsorted {
		r.referrers = slices.DeleteFunc(r.referrers, func(x referrer) bool { return x == ref })
		return
	}
	if i, ok := slices.BinarySearchFunc(r.referrers, ref, compareReferrers); ok {
		r.referrers = slices.Delete(r.referrers, i, i+1)
	}
}

// referrersOf returns the manifests of r that refer to subject, in order;
// the slice is r's.
func (r *repo) referrersOf(subject dkey) []referrer {
	i, _ := slices.BinarySearchFunc(r.referrers, referrer{subject: subject}, compareReferrers)
	j := i
	for j < len(r.referrers) && r.referrers[j].subject == subject {
		j++
	}
	return r.referrers[i:j]
}

// sortReferrers sorts the referrers of the repositories apply appended
// to, dropping pairs added twice.
func (s *state) sortReferrers() {
	for _, r := range s.unsorted {
		slices.SortFunc(r.referrers, compareReferrers)
		r.referrers = slices.Compact(r.referrers)
		if len(r.referrers) == 0 {
			r.referrers = nil
		}
		r.unsorted = false
	}
	clear(s.unsorted)
	s.unsorted = s.unsorted[:0]
}
