package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metalog"
)

func TestMetadataRoundTrip(t *testing.T) {
	t.Parallel()
	a, b := joinPair(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	batches := []metalog.Batch{
		{Origin: "a", Seq: 1, Ops: []metalog.Op{{Key: "tag/alpine/latest", Value: []byte("sha256:1"), Stamp: 10, Origin: "a"}}},
		{Origin: "a", Seq: 2, Ops: []metalog.Op{
			{Key: "tag/alpine/latest", Deleted: true, Stamp: 11, Origin: "a"},
			{Key: "manifest/x", Value: bytes.Repeat([]byte("m"), 4<<20), Stamp: 12, Origin: "a"}, // a 4 MiB manifest
		}},
		{Origin: "c", Seq: 1, Ops: []metalog.Op{{Key: "repo/busybox", Value: []byte("{}"), Stamp: 3, Origin: "c"}}},
	}
	if err := a.Client().Apply(ctx, "b", batches); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	v, err := a.Client().Vector(ctx, "b")
	if err != nil {
		t.Fatalf("Vector: %v", err)
	}
	if want := (metalog.Vector{"a": 2, "c": 1}); !reflect.DeepEqual(v, want) {
		t.Errorf("Vector = %v, want %v", v, want)
	}
	got, err := a.Client().Since(ctx, "b", "a", 0, 10)
	if err != nil {
		t.Fatalf("Since: %v", err)
	}
	if !reflect.DeepEqual(got, batches[:2]) {
		t.Errorf("Since(a, 0) returned %d batches, not the two applied", len(got))
	}
	got, err = a.Client().Since(ctx, "b", "a", 1, 10)
	if err != nil || len(got) != 1 || got[0].Seq != 2 {
		t.Errorf("Since(a, 1) = %d batches, %v; want batch 2", len(got), err)
	}
	// 20 MiB of batches go as several Apply calls and come back in several
	// Since calls, none over the message limits.
	var big []metalog.Batch
	for seq := uint64(1); seq <= 5; seq++ {
		big = append(big, metalog.Batch{Origin: "big", Seq: seq, Ops: []metalog.Op{{Key: "manifest/" + strconv.Itoa(int(seq)), Value: bytes.Repeat([]byte{byte(seq)}, 4<<20), Stamp: seq, Origin: "big"}}})
	}
	if err := a.Client().Apply(ctx, "b", big); err != nil {
		t.Fatalf("Apply(20 MiB): %v", err)
	}
	var back []metalog.Batch
	for calls := 1; len(back) < len(big); calls++ {
		got, err := a.Client().Since(ctx, "b", "big", uint64(len(back)), 100)
		if err != nil || len(got) == 0 || calls > len(big) {
			t.Fatalf("Since(big, %d) = %d batches, %v", len(back), len(got), err)
		}
		if calls == 1 && len(got) == len(big) {
			t.Errorf("Since returned all 20 MiB in one response")
		}
		back = append(back, got...)
	}
	if !reflect.DeepEqual(back, big) {
		t.Errorf("Since returned other batches than the 20 MiB applied")
	}

	// The call goes both ways, and to oneself.
	if v, err := b.Client().Vector(ctx, "a"); err != nil || len(v) != 0 {
		t.Errorf("b.Vector(a) = %v, %v; want empty", v, err)
	}
	if _, err := a.Client().Vector(ctx, "a"); err != nil {
		t.Errorf("a.Vector(a): %v", err)
	}
}

// A handler that panics (a bug, a corrupt page of the store's file) fails
// its call with Internal; the member goes on serving.
func TestHandlerPanic(t *testing.T) {
	t.Parallel()
	a, _ := joinPair(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := a.Client().Since(ctx, "b", panicOrigin, 0, 1)
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "page 7 expected to be a leaf") {
		t.Fatalf("Since on a handler that panics = %v, want Internal with the panic", err)
	}
	if _, err := a.Client().Vector(ctx, "b"); err != nil {
		t.Fatalf("b after a handler panicked: %v", err)
	}
}

func TestBlobTransfer(t *testing.T) {
	t.Parallel()
	a, b := joinPair(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	data := make([]byte, 10<<20+123)
	rand.Read(data)
	d := digest.FromBytes(data)
	if err := a.Client().PutBlob(ctx, "b", d, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	missing := digest.FromString("missing")
	has, err := a.Client().Has(ctx, "b", []digest.Digest{d, missing})
	if err != nil || !reflect.DeepEqual(has, []bool{true, false}) {
		t.Fatalf("Has = %v, %v; want [true false]", has, err)
	}

	if back, ok := b.blobs.get(d); !ok || !bytes.Equal(back, data) {
		t.Fatalf("b holds %d bytes of %s (held %v); want the %d bytes put", len(back), d, ok, len(data))
	}

	// An empty blob.
	empty := digest.FromBytes(nil)
	if err := a.Client().PutBlob(ctx, "b", empty, 0, bytes.NewReader(nil)); err != nil {
		t.Fatalf("PutBlob(empty): %v", err)
	}
	if back, ok := b.blobs.get(empty); !ok || len(back) != 0 {
		t.Fatalf("b holds %d bytes of the empty blob (held %v)", len(back), ok)
	}

	// Domain errors come back as themselves.
	wrong := digest.FromString("not the data")
	err = a.Client().PutBlob(ctx, "b", wrong, int64(len(data)), bytes.NewReader(data))
	if !errors.Is(err, storage.ErrDigestMismatch) || status.Code(err) != codes.InvalidArgument {
		t.Errorf("PutBlob(wrong digest): %v, want storage.ErrDigestMismatch", err)
	}
	// A reader shorter than the size aborts the transfer.
	short := digest.FromBytes(data[:1000])
	if err := a.Client().PutBlob(ctx, "b", short, 2000, bytes.NewReader(data[:1000])); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("PutBlob(short reader): %v, want io.ErrUnexpectedEOF", err)
	}
	if has, err := a.Client().Has(ctx, "b", []digest.Digest{wrong, short}); err != nil || has[0] || has[1] {
		t.Errorf("after failed puts Has = %v, %v; want nothing stored", has, err)
	}
	// Bad input is refused by the server, not the handler.
	if _, err := a.Client().Has(ctx, "b", []digest.Digest{"nonsense"}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "peer b: has") {
		t.Errorf("Has(nonsense): %v, want InvalidArgument naming the member", err)
	}
}

func TestWireErrors(t *testing.T) {
	t.Parallel()
	for _, w := range wireErrors {
		err := fromStatus(context.Background(), "m", "op", toStatus(errorsWrap(w.err)))
		if !errors.Is(err, w.err) || status.Code(err) != w.code {
			t.Errorf("%v crossed the wire as %v (code %v)", w.err, err, status.Code(err))
		}
	}
	live := context.Background()
	cancelled, cancel := context.WithCancel(live)
	cancel()
	expired, cancel := context.WithDeadline(live, time.Now().Add(-time.Second))
	defer cancel()
	for _, tc := range []struct {
		ctx  context.Context // the caller's
		in   error
		want error
	}{
		{cancelled, context.Canceled, context.Canceled},
		{expired, context.DeadlineExceeded, context.DeadlineExceeded},
		// The caller's context is live: the call failed on the member's
		// side or its connection was closed under it.
		{live, status.Error(codes.Canceled, "grpc: the client connection is closing"), ErrUnreachable},
		{live, context.DeadlineExceeded, ErrUnreachable},
		{live, status.Error(codes.Unavailable, "connection refused"), ErrUnreachable},
		{live, status.Error(codes.Unauthenticated, "no"), ErrUnauthenticated},
	} {
		err := fromStatus(tc.ctx, "m", "op", toStatus(tc.in))
		if !errors.Is(err, tc.want) {
			t.Errorf("%v crossed the wire as %v, want %v", tc.in, err, tc.want)
		}
		if tc.ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			t.Errorf("%v crossed the wire as %v: a context error while the caller's context is live", tc.in, err)
		}
	}
	if err := fromStatus(context.Background(), "m", "op", toStatus(errors.New("disk on fire"))); status.Code(err) != codes.Internal {
		t.Errorf("an unknown error crossed the wire as %v, want Internal", err)
	}
}

func errorsWrap(err error) error { return &wrapped{err} }

type wrapped struct{ err error }

func (w *wrapped) Error() string { return "handler: " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }

// A call in flight when its member's connection is dropped (the member
// died, left or moved) fails as ErrUnreachable, not as a context error:
// the caller's context is live. gRPC reports it as Canceled ("the client
// connection is closing"), which read as context.Canceled.
func TestDroppedConnection(t *testing.T) {
	t.Parallel()
	a, b := joinPair(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cc, err := a.Client().conn("b")
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 2*chunkSize)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- a.Client().PutBlob(ctx, "b", digest.FromBytes(data), int64(len(data)), pr) }()
	if _, err := pw.Write(data[:1]); err != nil { // read: the stream is open
		t.Fatal(err)
	}
	a.pool.drop("b")
	waitFor(t, 10*time.Second, "the dropped connection to shut down", func() bool {
		return cc.GetState() == connectivity.Shutdown
	})
	go func() { _, _ = pw.Write(data[1:]); _ = pw.Close() }() // the call may stop reading
	err = <-done
	_ = pr.Close()
	if !errors.Is(err, ErrUnreachable) || errors.Is(err, context.Canceled) {
		t.Errorf("PutBlob over a dropped connection: %v, want ErrUnreachable and no context error", err)
	}
	if _, ok := b.blobs.get(digest.FromBytes(data)); ok {
		t.Error("b stored the blob of the call cut off")
	}
}
