package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metalog"
)

// Metadata replication. Every local write is a batch in this member's log
// (metadb). A follower per live peer pushes the log to it in order; a write
// returns once a peer acknowledged it (or every peer did, when that is
// quick). Anti-entropy pulls from a random peer whatever this member lacks,
// which brings back members that missed pushes and fills new ones.

// maxBatchBytes bounds one Apply call (manifests are up to 4 MiB).
const maxBatchBytes = 16 << 20

// follower pushes this member's log to one peer.
type follower struct {
	name   string
	acked  atomic.Uint64 // highest of our seqs the peer holds
	kick   chan struct{}
	cancel context.CancelFunc
}

// followers runs one follower per live peer.
type followers struct {
	n  *Node
	mu sync.Mutex
	by map[string]*follower

	progress sync.Mutex
	changed  chan struct{} // closed and replaced whenever a follower advances
}

func newFollowers(n *Node) *followers {
	return &followers{n: n, by: map[string]*follower{}, changed: make(chan struct{})}
}

// sync starts followers for new peers and stops those of departed ones.
func (fs *followers) sync(ctx context.Context, peers []string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	keep := map[string]bool{}
	for _, name := range peers {
		keep[name] = true
		if fs.by[name] == nil {
			fctx, cancel := context.WithCancel(ctx)
			f := &follower{name: name, kick: make(chan struct{}, 1), cancel: cancel}
			fs.by[name] = f
			go fs.run(fctx, f)
		}
	}
	for name, f := range fs.by {
		if !keep[name] {
			f.cancel()
			delete(fs.by, name)
		}
	}
}

// kickAll wakes every follower and returns them.
func (fs *followers) kickAll() []*follower {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := make([]*follower, 0, len(fs.by))
	for _, f := range fs.by {
		select {
		case f.kick <- struct{}{}:
		default:
		}
		out = append(out, f)
	}
	return out
}

// lag returns how many of the batches up to seq the slowest follower has
// not acknowledged.
func (fs *followers) lag(seq uint64) uint64 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var worst uint64
	for _, f := range fs.by {
		if a := f.acked.Load(); a < seq {
			worst = max(worst, seq-a)
		}
	}
	return worst
}

func (fs *followers) advanced() {
	fs.progress.Lock()
	close(fs.changed)
	fs.changed = make(chan struct{})
	fs.progress.Unlock()
}

func (fs *followers) waitChange() <-chan struct{} {
	fs.progress.Lock()
	defer fs.progress.Unlock()
	return fs.changed
}

func (fs *followers) run(ctx context.Context, f *follower) {
	n := fs.n
	if v, err := n.cluster.Vector(ctx, f.name); err == nil {
		f.acked.Store(v[n.name])
	}
	tick := time.NewTicker(n.cfg.Cluster.SyncInterval)
	defer tick.Stop()
	for {
		for ctx.Err() == nil {
			batches, err := n.meta.Since(n.name, f.acked.Load(), 64)
			if err != nil || len(batches) == 0 {
				break
			}
			batches = capBytes(batches)
			if err := n.cluster.Apply(ctx, f.name, batches); err != nil {
				n.log.Debug("pushing metadata", "member", f.name, "err", err)
				break
			}
			f.acked.Store(batches[len(batches)-1].Seq)
			fs.advanced()
		}
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
		case <-tick.C:
		}
	}
}

// capBytes keeps a prefix of batches under maxBatchBytes (at least one).
func capBytes(batches []metalog.Batch) []metalog.Batch {
	size := 0
	for i, b := range batches {
		for _, op := range b.Ops {
			size += len(op.Key) + len(op.Value) + 32
		}
		if size > maxBatchBytes && i > 0 {
			return batches[:i]
		}
	}
	return batches
}

// replicate is metadb's Replicate hook: it returns once a peer holds batch
// b, waiting a little longer for the rest so a read on any member soon
// after sees the write. With no live peer the local commit suffices.
func (n *Node) replicate(ctx context.Context, b metalog.Batch) error {
	fs := n.followers.kickAll()
	if len(fs) == 0 {
		return nil
	}
	deadline := time.NewTimer(n.cfg.Cluster.WriteTimeout)
	defer deadline.Stop()
	var grace <-chan time.Time
	for {
		changed := n.followers.waitChange()
		acked := 0
		for _, f := range fs {
			if f.acked.Load() >= b.Seq {
				acked++
			}
		}
		switch {
		case acked == len(fs):
			return nil
		case acked > 0 && grace == nil:
			grace = time.After(time.Second)
		}
		select {
		case <-changed:
		case <-grace:
			return nil
		case <-deadline.C:
			return fmt.Errorf("write %s/%d reached no other member: %w", b.Origin, b.Seq, storage.ErrUnavailable)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// antiEntropy pulls, every SyncInterval, what a random live peer has
// applied and this member has not.
func (n *Node) antiEntropy(ctx context.Context) {
	every(ctx, n.cfg.Cluster.SyncInterval, false, func(ctx context.Context) {
		peers := n.views.load().peers()
		if len(peers) == 0 {
			return
		}
		p := peers[rand.IntN(len(peers))]
		if err := n.pullFrom(ctx, p); err != nil && ctx.Err() == nil {
			n.log.Debug("anti-entropy", "member", p, "err", err)
		}
	})
}

// pullFrom applies every batch member p has and this member lacks.
func (n *Node) pullFrom(ctx context.Context, p string) error {
	theirs, err := n.cluster.Vector(ctx, p)
	if err != nil {
		return err
	}
	mine := n.meta.Vector()
	for origin, seq := range theirs {
		for mine[origin] < seq {
			batches, err := n.cluster.Since(ctx, p, origin, mine[origin], 64)
			if err != nil {
				return err
			}
			if len(batches) == 0 {
				break
			}
			if err := n.meta.Apply(ctx, batches); err != nil {
				return err
			}
			next := n.meta.Vector()[origin]
			if next == mine[origin] {
				break // a gap p cannot fill
			}
			mine[origin] = next
		}
	}
	return nil
}
