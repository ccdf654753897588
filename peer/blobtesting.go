package peer

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/opencontainers/go-digest"
)

// FakeBlobTransport is a cluster of in-memory members for tests of code
// that moves blobs between members: it answers Has and PutBlob, as Cluster
// does over gRPC, by calling the named member's Blobs directly. A member
// marked failing answers every call with its error, as a member that died
// or cannot be reached does. Its methods may be called concurrently.
type FakeBlobTransport struct {
	mu      sync.Mutex
	members map[string]Blobs
	failing map[string]error
	puts    map[string]int
}

// NewFakeBlobTransport returns a transport to no member.
func NewFakeBlobTransport() *FakeBlobTransport {
	return &FakeBlobTransport{members: map[string]Blobs{}, failing: map[string]error{}, puts: map[string]int{}}
}

// Add makes member name answer through b.
func (f *FakeBlobTransport) Add(name string, b Blobs) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members[name] = b
}

// Fail makes every call to member name fail with err wrapping
// ErrUnreachable; a nil err heals it.
func (f *FakeBlobTransport) Fail(name string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.failing, name)
		return
	}
	f.failing[name] = fmt.Errorf("peer %s: %w: %w", name, ErrUnreachable, err)
}

// Puts returns how many blobs member name was sent.
func (f *FakeBlobTransport) Puts(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts[name]
}

// member returns the Blobs of member name, or the error a call to it gets.
func (f *FakeBlobTransport) member(name string) (Blobs, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failing[name]; err != nil {
		return nil, err
	}
	b, ok := f.members[name]
	if !ok {
		return nil, fmt.Errorf("peer %s: %w", name, ErrMemberUnknown)
	}
	return b, nil
}

// Has asks member which of ds it holds, like Cluster.Has.
func (f *FakeBlobTransport) Has(ctx context.Context, member string, ds []digest.Digest) ([]bool, error) {
	b, err := f.member(member)
	if err != nil {
		return nil, err
	}
	has, err := b.Has(ctx, ds)
	if err != nil {
		return nil, fmt.Errorf("peer %s: has: %w", member, err)
	}
	return has, nil
}

// PutBlob sends member size bytes of r as blob d, like Cluster.PutBlob:
// the member stores nothing unless they are size bytes that hash to d.
func (f *FakeBlobTransport) PutBlob(ctx context.Context, member string, d digest.Digest, size int64, r io.Reader) error {
	b, err := f.member(member)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("peer %s: put blob %s: negative size %d", member, d, size)
	}
	if err := b.Put(ctx, d, size, io.LimitReader(r, size)); err != nil {
		return fmt.Errorf("peer %s: put blob %s: %w", member, d, err)
	}
	f.mu.Lock()
	f.puts[member]++
	f.mu.Unlock()
	return nil
}
