package metadb

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// BenchmarkLinks answers whether a repository links a manifest, picked at
// random, in an index of n manifests, ten to a repository, two tags each
// (as bench-metadata loads them): at a million, memory far larger than
// the processor's caches, so what it measures is mostly the loads that
// miss them.
func BenchmarkLinks(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			st := newState()
			keys := make([]dkey, n)
			names := make([]string, n)
			for i := range n {
				repo := fmt.Sprintf("org%d/repo%d", i/10%100, i/10)
				keys[i], names[i] = dkeyOf(applyManifest(b, st, i, repo, "")), repo
			}
			st.settle()
			// The reads, picked ahead and laid out in order, with names of
			// their own as a request's are: reading them takes no miss of
			// the processor's caches, so what is measured is links'.
			type read struct {
				name string
				k    dkey
			}
			rng := rand.New(rand.NewPCG(1, 2))
			reads := make([]read, 1<<18)
			for j := range reads {
				i := rng.IntN(n)
				reads[j] = read{strings.Clone(names[i]), keys[i]}
			}
			j := 0
			for b.Loop() {
				r := &reads[j%len(reads)]
				if !st.links(r.name, r.k) {
					b.Fatal("not linked")
				}
				j++
			}
		})
	}
}
