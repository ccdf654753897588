package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/node/placement"
	"github.com/atollhq/atoll/node/scrub"
)

// TestRefetch: a copy a scrub could not replace because its holders did
// not answer is fetched again each round until it arrives; one no member
// holds is dropped (and said lost, unless nothing links it); one stored
// here meanwhile is done.
func TestRefetch(t *testing.T) {
	ctx := context.Background()
	local := placement.NewMemoryStore()
	down := map[digest.Digest]bool{} // blobs whose holders do not answer
	noneAnywhere := map[digest.Digest]bool{}
	var fetched []digest.Digest
	r := &refetch{local: local, repos: func(digest.Digest) []string { return []string{"app"} },
		log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		fetch: func(ctx context.Context, d digest.Digest) (string, error) {
			switch {
			case ctx.Err() != nil:
				return "", ctx.Err()
			case down[d]:
				return "", errors.New("n3: down, and may hold one")
			case noneAnywhere[d]:
				return "", fmt.Errorf("%w: n2: holds no copy", scrub.ErrNoGoodCopy)
			}
			fetched = append(fetched, d)
			return "n2", nil
		}}

	comesBack, lost, pushed := digest.FromString("back"), digest.FromString("lost"), digest.FromString("pushed")
	down[comesBack], down[pushed] = true, true
	noneAnywhere[lost] = true
	for _, d := range []digest.Digest{comesBack, lost, pushed} {
		if _, err := r.repair(ctx, d); err == nil {
			t.Fatalf("repair of %s succeeded", d)
		}
	}
	// A scrub that ends (its client went away) while a copy is fetched
	// has moved the bad one aside all the same.
	ended, end := context.WithCancel(ctx)
	end()
	cut := digest.FromString("cut")
	if _, err := r.repair(ended, cut); err == nil {
		t.Fatal("repair in an ended scrub succeeded")
	}
	if got := r.wanted(); got != 3 {
		t.Fatalf("%d blobs wanted after the scrubs, want 3 (the lost one is not)", got)
	}

	down[cut] = true
	r.round(ctx)
	if got := r.wanted(); got != 3 || len(fetched) != 0 {
		t.Fatalf("after a round with the holders down: %d wanted, %v fetched; want 3 and none", got, fetched)
	}

	local.Add([]byte("pushed")) // a push stores it again
	down[comesBack], down[cut] = false, false
	r.round(ctx)
	if got := r.wanted(); got != 0 {
		t.Errorf("%d blobs still wanted once their holders came back or they were pushed", got)
	}
	slices.Sort(fetched)
	if want := slices.Sorted(slices.Values([]digest.Digest{comesBack, cut})); !slices.Equal(fetched, want) {
		t.Errorf("fetched %v, want %v (the pushed one is here already)", fetched, want)
	}
}
