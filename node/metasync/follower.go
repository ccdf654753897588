package metasync

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metalog"
)

// maxBatchBytes bounds one Apply call (manifests are up to 4 MiB).
const maxBatchBytes = 16 << 20

// follower pushes this member's log to one peer, in order.
type follower struct {
	name   string
	acked  atomic.Uint64 // highest of our seqs the peer holds
	kick   chan struct{}
	cancel context.CancelFunc
}

// push runs f until ctx is done: it sends what the peer lacks whenever a
// write kicks it, and every SyncInterval in case a push failed.
func (r *pusher) push(ctx context.Context, f *follower) {
	t := r.conn()
	if t == nil {
		return
	}
	if v, err := t.Vector(ctx, f.name); err == nil {
		f.acked.Store(v[r.self])
	}
	tick := time.NewTicker(r.cfg.SyncInterval)
	defer tick.Stop()
	for {
		for ctx.Err() == nil {
			acked := f.acked.Load()
			batches, err := r.log.Since(r.self, acked, pullLimit)
			if err != nil || len(batches) == 0 {
				break
			}
			if batches[0].Seq > acked+1 {
				// Trimmed: the peer installs a snapshot when it pulls.
				// Ask where it stands now, and push from there.
				if v, err := t.Vector(ctx, f.name); err == nil && v[r.self] > acked {
					f.acked.Store(v[r.self])
					r.advanced()
					continue
				}
				break
			}
			batches = capBytes(batches)
			if err := t.Apply(ctx, f.name, batches); err != nil {
				r.slog.Debug("pushing metadata", "member", f.name, "err", err)
				break
			}
			f.acked.Store(batches[len(batches)-1].Seq)
			r.advanced()
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

// kickAll wakes every follower and returns them.
func (r *pusher) kickAll() []*follower {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*follower, 0, len(r.followers))
	for _, f := range r.followers {
		select {
		case f.kick <- struct{}{}:
		default:
		}
		out = append(out, f)
	}
	return out
}

// Lag returns how many of this member's batches the slowest follower has
// not acknowledged.
func (r *pusher) Lag() uint64 {
	seq := r.log.Vector()[r.self]
	r.mu.Lock()
	defer r.mu.Unlock()
	var worst uint64
	for _, f := range r.followers {
		if a := f.acked.Load(); a < seq {
			worst = max(worst, seq-a)
		}
	}
	return worst
}

func (r *pusher) advanced() {
	r.progress.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.progress.Unlock()
}

func (r *pusher) waitChange() <-chan struct{} {
	r.progress.Lock()
	defer r.progress.Unlock()
	return r.changed
}

// wait returns once a peer holds this member's batches up to seq, waiting
// up to AckGrace longer for the rest so a read on any member soon after
// sees the write. With no live peer the local commit suffices. It fails
// with storage.ErrUnavailable when no peer acknowledged within
// WriteTimeout.
func (r *pusher) wait(ctx context.Context, seq uint64) error {
	fs := r.kickAll()
	if len(fs) == 0 {
		return nil
	}
	deadline := time.NewTimer(r.cfg.WriteTimeout)
	defer deadline.Stop()
	var grace <-chan time.Time
	for {
		changed := r.waitChange()
		acked := 0
		for _, f := range fs {
			if f.acked.Load() >= seq {
				acked++
			}
		}
		switch {
		case acked == len(fs):
			return nil
		case acked > 0 && grace == nil:
			grace = time.After(r.cfg.AckGrace)
		}
		select {
		case <-changed:
		case <-grace:
			return nil
		case <-deadline.C:
			return fmt.Errorf("write %s/%d reached no other member: %w", r.self, seq, storage.ErrUnavailable)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
