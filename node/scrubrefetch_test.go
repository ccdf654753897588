package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
		fetch: func(_ context.Context, d digest.Digest) (string, error) {
			switch {
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
	if got := r.wanted(); got != 2 {
		t.Fatalf("%d blobs wanted after the scrub, want 2 (the lost one is not)", got)
	}

	r.round(ctx)
	if got := r.wanted(); got != 2 || len(fetched) != 0 {
		t.Fatalf("after a round with the holders down: %d wanted, %v fetched; want 2 and none", got, fetched)
	}

	local.Add([]byte("pushed")) // a push stores it again
	down[comesBack] = false
	r.round(ctx)
	if got := r.wanted(); got != 0 {
		t.Errorf("%d blobs still wanted once one came back and the other was pushed", got)
	}
	if len(fetched) != 1 || fetched[0] != comesBack {
		t.Errorf("fetched %v, want only %s (the pushed one is here already)", fetched, comesBack)
	}
}
