package metadb

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage/metalog"
)

// The catalog stays sorted when a commit creates repositories in any
// order, and one that creates a repository and empties it again leaves
// no name behind; a reopened store lists the same.
func TestRepositoryNamesSorted(t *testing.T) {
	s := member(t, "a")
	var want []string
	rng := rand.New(rand.NewPCG(1, 1))
	for b := 0; b < 5; b++ {
		var puts []ManifestPut
		for i := 0; i < 50; i++ {
			name := fmt.Sprintf("org%d/app-%03d", rng.IntN(7), rng.IntN(1000))
			puts = append(puts, ManifestPut{Repo: name, Manifest: manifest(name, ""), Tags: []string{"v1"}})
			if !slices.Contains(want, name) {
				want = append(want, name)
			}
		}
		must(t, s.PutManifests(ctx, puts))
	}
	// Created and emptied in one commit: a blob linked and unlinked.
	d := digest.FromString("blob")
	now := s.Stamp()
	must(t, s.Apply(ctx, []metalog.Batch{{Origin: "x", Seq: 1, Ops: []metalog.Op{
		{Key: string(blobLinkKey("aaa/gone", d)), Stamp: now, Origin: "x"},
		{Key: string(blobLinkKey("aaa/gone", d)), Deleted: true, Stamp: now + 1, Origin: "x"},
	}}}))
	slices.Sort(want)
	if got := s.Repositories("", 0); !slices.Equal(got, want) {
		t.Fatalf("Repositories = %v\nwant %v", got, want)
	}
	if len(s.st.repos.added) != 0 {
		t.Errorf("names left unsorted after a commit: %v", s.st.repos.added)
	}
	must(t, s.DeleteManifest(ctx, want[3], manifest(want[3], "").Descriptor.Digest))
	if got := s.Repositories("", 0); slices.Contains(got, want[3]) || len(got) != len(want)-1 {
		t.Errorf("after emptying %s: %v", want[3], got)
	}
}
