package metadb

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage/metalog"
)

// TestLinksMatchesRepositories: state.links, which answers from a
// manifest's holders, says what each repository's own set of manifests
// says, after every op of a random mix of links, unlinks, records and
// their deletion over a few repositories (so that manifests go from one
// holder to several and back, and repositories come and go, their ids
// reused), with names short and long.
func TestLinksMatchesRepositories(t *testing.T) {
	st := newState()
	rng := rand.New(rand.NewPCG(1, 2))
	// Names that fit an idName, one that just does, and ones that do not
	// (links then compares the repository's).
	repos := []string{"a", "b", "c/d", "e", strings.Repeat("f", 31), strings.Repeat("f", 32), strings.Repeat("g/h", 20)}
	var (
		digests []digest.Digest
		records [][]byte
	)
	for i := range 6 {
		m := manifest(fmt.Sprintf("m%d", i), "")
		rec, err := encodeRecord(m)
		if err != nil {
			t.Fatal(err)
		}
		digests, records = append(digests, m.Descriptor.Digest), append(records, rec)
	}
	for step := range 5000 {
		i, repo := rng.IntN(len(digests)), repos[rng.IntN(len(repos))]
		var op metalog.Op
		switch rng.IntN(4) {
		case 0, 1:
			op = metalog.Op{Key: string(manifestLinkKey(repo, digests[i])), Deleted: rng.IntN(2) == 0}
		case 2:
			op = metalog.Op{Key: string(manifestKey(digests[i])), Value: records[i]}
		case 3:
			op = metalog.Op{Key: string(manifestKey(digests[i])), Deleted: true}
		}
		op.Stamp = uint64(step + 1)
		if err := st.apply(op); err != nil {
			t.Fatal(err)
		}
		st.settle()
		for _, name := range repos {
			for j, d := range digests {
				k := dkeyOf(d)
				want := false
				if r := st.repos.get(name, false); r != nil {
					_, want = r.manifests[k]
				}
				if got := st.links(name, k); got != want {
					t.Fatalf("step %d (%+v): links(%s, m%d) = %v, the repository's set says %v", step, op, name, j, got, want)
				}
			}
		}
	}
}
