package metasync

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/atollhq/atoll/storage/metalog"
)

// ErrUnreachable is what a Network answers for a member that is down or
// unknown.
var ErrUnreachable = errors.New("member unreachable")

// Network is a fake Transport for tests: the members' logs by name, in
// process. Members can be taken down, and what travels can be tampered
// with (batches dropped, duplicated, reordered). All methods may be called
// concurrently.
type Network struct {
	mu     sync.Mutex
	logs   map[string]Log
	down   map[string]bool
	tamper func(member string, batches []metalog.Batch) []metalog.Batch
	// failChunks is how many of the next snapshot chunks fail.
	failChunks int
}

var _ Transport = (*Network)(nil)

// NewNetwork returns a network with no member.
func NewNetwork() *Network {
	return &Network{logs: map[string]Log{}, down: map[string]bool{}}
}

// Add makes log reachable as member name.
func (n *Network) Add(name string, log Log) {
	n.mu.Lock()
	n.logs[name] = log
	n.mu.Unlock()
}

// SetDown makes member name unreachable (down) or reachable again.
func (n *Network) SetDown(name string, down bool) {
	n.mu.Lock()
	n.down[name] = down
	n.mu.Unlock()
}

// Tamper passes every batch list that travels (Since responses and Apply
// requests) through fn, with the member it comes from or goes to; nil
// stops tampering.
func (n *Network) Tamper(fn func(member string, batches []metalog.Batch) []metalog.Batch) {
	n.mu.Lock()
	n.tamper = fn
	n.mu.Unlock()
}

func (n *Network) member(name string) (Log, func(string, []metalog.Batch) []metalog.Batch, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	log, ok := n.logs[name]
	if !ok || n.down[name] {
		return nil, nil, fmt.Errorf("%s: %w", name, ErrUnreachable)
	}
	tamper := n.tamper
	if tamper == nil {
		tamper = func(_ string, bs []metalog.Batch) []metalog.Batch { return bs }
	}
	return log, tamper, nil
}

// Vector implements Transport.
func (n *Network) Vector(_ context.Context, member string) (metalog.Vector, error) {
	log, _, err := n.member(member)
	if err != nil {
		return nil, err
	}
	return log.Vector(), nil
}

// Since implements Transport.
func (n *Network) Since(_ context.Context, member, origin string, seq uint64, limit int) ([]metalog.Batch, error) {
	log, tamper, err := n.member(member)
	if err != nil {
		return nil, err
	}
	bs, err := log.Since(origin, seq, limit)
	if err != nil {
		return nil, err
	}
	return tamper(member, bs), nil
}

// Apply implements Transport.
func (n *Network) Apply(ctx context.Context, member string, batches []metalog.Batch) error {
	log, tamper, err := n.member(member)
	if err != nil {
		return err
	}
	return log.Apply(ctx, tamper(member, batches))
}

// FailChunks makes the next k snapshot chunks asked for fail, as a
// connection cut in the middle of a snapshot would.
func (n *Network) FailChunks(k int) {
	n.mu.Lock()
	n.failChunks = k
	n.mu.Unlock()
}

// ErrChunkLost is what a chunk FailChunks fails answers.
var ErrChunkLost = errors.New("snapshot chunk lost")

// Snapshot implements Transport.
func (n *Network) Snapshot(_ context.Context, member, after string, limit int) (metalog.Chunk, error) {
	log, _, err := n.member(member)
	if err != nil {
		return metalog.Chunk{}, err
	}
	n.mu.Lock()
	fail := n.failChunks > 0
	if fail {
		n.failChunks--
	}
	n.mu.Unlock()
	if fail {
		return metalog.Chunk{}, fmt.Errorf("%s after %q: %w", member, after, ErrChunkLost)
	}
	return log.SnapshotChunk(after, limit)
}
