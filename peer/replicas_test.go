package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// A replica's bytes, the members it forwards to and the copies its commit
// stands for cross the wire; a member that predates the count (it answers
// 0) counts as the one copy it keeps.
func TestReplicaWire(t *testing.T) {
	t.Parallel()
	a, b := joinPair(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	data := make([]byte, 3<<20+17)
	rand.Read(data)
	d := digest.FromBytes(data)
	for _, tc := range []struct {
		id      string
		forward []string
		copies  int // b's answer
		want    int
	}{
		{"a.chain", []string{"c", "d"}, 3, 3},
		{"a.plain", nil, 1, 1},
		{"a.old", []string{"c"}, 0, 1},
	} {
		b.blobs.mu.Lock()
		b.blobs.copies = tc.copies
		delete(b.blobs.blobs, d)
		b.blobs.mu.Unlock()
		state, size, err := a.Client().AppendReplica(ctx, "b", tc.id, nil, tc.forward, bytes.NewReader(data))
		if err != nil || size != int64(len(data)) || string(state) != tc.id {
			t.Fatalf("%s: AppendReplica = %q, %d, %v; want %d bytes", tc.id, state, size, err, len(data))
		}
		rep, ok := b.blobs.replica(tc.id)
		if !ok || !bytes.Equal(rep.data, data) || !slices.Equal(rep.forward, tc.forward) {
			t.Fatalf("%s: b keeps %d bytes forwarding to %v (kept %v); want %d bytes forwarding to %v",
				tc.id, len(rep.data), rep.forward, ok, len(data), tc.forward)
		}
		copies, err := a.Client().FinishReplica(ctx, "b", tc.id, state, d)
		if err != nil || copies != tc.want {
			t.Errorf("%s: FinishReplica = %d, %v; want %d copies", tc.id, copies, err, tc.want)
		}
		if _, ok := b.blobs.get(d); !ok {
			t.Errorf("%s: b holds no blob after the finish", tc.id)
		}
	}
	// A mismatch comes back as itself; a discard commits nothing.
	if _, _, err := a.Client().AppendReplica(ctx, "b", "a.wrong", nil, []string{"c"}, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Client().FinishReplica(ctx, "b", "a.wrong", nil, digest.FromString("other")); !errors.Is(err, storage.ErrDigestMismatch) {
		t.Errorf("FinishReplica(wrong digest): %v, want storage.ErrDigestMismatch", err)
	}
	if _, _, err := a.Client().AppendReplica(ctx, "b", "a.gone", nil, nil, bytes.NewReader(data[:10])); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Client().FinishReplica(ctx, "b", "a.gone", nil, ""); err != nil {
		t.Errorf("FinishReplica(discard): %v", err)
	}
	if _, ok := b.blobs.replica("a.gone"); ok {
		t.Error("b keeps a discarded replica")
	}
}
