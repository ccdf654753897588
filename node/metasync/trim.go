package metasync

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atollhq/atoll/storage/metadb"
	"github.com/atollhq/atoll/storage/metalog"
)

// Trimming. Each member trims its own copy of the log: a batch goes once
// every live member has applied it, and every member gone for less than
// Horizon too, by the last vector it reported (a member this one has not
// seen since it started holds nothing back: it comes back through a
// snapshot). A tombstone goes in two rounds: one lists those older than
// Horizon, the next drops them if every member has by then applied all
// this member had at the first; the snapshot of a member that dropped one
// is then no poorer than its log would have been. Listing reads every
// entry, so it runs at most every Horizon/24 (hourly by default). Members
// must share Horizon: a snapshot's receiver deletes what it holds and the
// snapshot lacks by its own.

// seen is the last vector a member reported, and when.
type seen struct {
	vec metalog.Vector
	at  time.Time
}

// trimState is what trimming remembers between rounds.
type trimState struct {
	mu      sync.Mutex
	known   map[string]seen // every member's last report, live or gone
	cands   []metalog.Op    // tombstones listed last round
	candVec metalog.Vector  // what this member had applied then
	listed  time.Time       // when tombstones were last listed

	base  atomic.Uint64 // the sum of the vector at the last round
	bytes atomic.Int64  // bytes of ops the log gained since (logGrew)
	kick  chan struct{} // a round is due (buffered 1)
}

// compacter is the store's online compaction (storage/metadb).
type compacter interface {
	CompactIfSparse(ctx context.Context) (metadb.Compaction, error)
}

// logGrew notes that the log gained about bytes of ops, and asks Run for
// a trim round when it has gained TrimAfter batches or TrimAfterBytes
// bytes since the last one. It is cheap enough to call after every
// write.
func (r *trimmer) logGrew(bytes int64) {
	grown := r.trim.bytes.Add(bytes)
	due := r.cfg.TrimAfterBytes > 0 && grown >= r.cfg.TrimAfterBytes ||
		r.cfg.TrimAfter > 0 && total(r.log.Vector())-r.trim.base.Load() >= uint64(r.cfg.TrimAfter)
	if !due {
		return
	}
	select {
	case r.trim.kick <- struct{}{}:
	default: // one is due already
	}
}

// opBytes returns the bytes of the keys and values of the ops of batches.
func opBytes(batches []metalog.Batch) int64 {
	var n int64
	for _, b := range batches {
		for _, op := range b.Ops {
			n += int64(len(op.Key) + len(op.Value))
		}
	}
	return n
}

// total returns how many batches v covers.
func total(v metalog.Vector) uint64 {
	var n uint64
	for _, seq := range v {
		n += seq
	}
	return n
}

// Trim runs one round of trimming (see above), then compacts the store's
// file if it is sparse. It trims nothing when a live member does not
// answer.
func (r *trimmer) Trim(ctx context.Context) error {
	if err := r.trimLog(ctx); err != nil {
		return err
	}
	return r.compact(ctx)
}

// trimLog is Trim without the compaction.
func (r *trimmer) trimLog(ctx context.Context) error {
	r.trim.mu.Lock()
	defer r.trim.mu.Unlock()
	now := time.Now()
	mine := r.log.Vector()
	r.trim.base.Store(total(mine))
	r.trim.bytes.Store(0)
	floor := mine.Clone()
	live := map[string]bool{}
	var peers []string
	t := r.conn()
	if t != nil {
		peers = r.peers()
	}
	for _, p := range peers {
		v, err := t.Vector(ctx, p)
		if err != nil {
			return fmt.Errorf("vector of %s: %w", p, err)
		}
		live[p] = true
		r.trim.known[p] = seen{vec: v, at: now}
	}
	for name, s := range r.trim.known {
		if !live[name] && now.Sub(s.at) > r.cfg.Horizon {
			delete(r.trim.known, name)
			continue
		}
		lower(floor, s.vec)
	}
	n, err := r.log.Trim(ctx, floor)
	if err != nil {
		return err
	}
	dropped := 0
	if r.trim.cands != nil && covers(floor, r.trim.candVec) {
		if dropped, err = r.log.DropTombstones(ctx, r.trim.cands); err != nil {
			return err
		}
		r.trim.cands = nil
	}
	if r.trim.cands == nil && now.Sub(r.trim.listed) >= r.cfg.Horizon/24 {
		if r.trim.cands, err = r.log.Tombstones(metadb.StampAt(now.Add(-r.cfg.Horizon))); err != nil {
			return err
		}
		r.trim.candVec, r.trim.listed = mine, now
	}
	if n > 0 || dropped > 0 {
		r.slog.Info("trimmed the metadata log", "batches", n, "tombstones", dropped)
	}
	return nil
}

// trimRound is a round of Run. A round that cannot trim (a live member
// did not answer) still compacts what collections freed.
func (r *trimmer) trimRound(ctx context.Context) {
	if err := r.trimLog(ctx); err != nil && ctx.Err() == nil {
		r.slog.Debug("trimming the metadata log", "err", err)
	}
	if err := r.compact(ctx); err != nil && ctx.Err() == nil {
		r.slog.Debug("compacting the metadata store", "err", err)
	}
}

// compact compacts the store's file online if it is sparse, and logs it.
func (r *trimmer) compact(ctx context.Context) error {
	c, ok := r.log.(compacter)
	if !ok {
		return nil
	}
	r.slog.Debug("checking whether metadata.db is sparse")
	done, err := c.CompactIfSparse(ctx)
	if done.Deferred {
		r.slog.Info("metadata.db is sparse but too large to copy with writes paused, and writes overtook each copy made while they went on: the next round tries again, a restart compacts it",
			"size", done.Before, "live", done.Live)
	}
	if done.Done {
		r.slog.Info("compacted metadata.db online", "before", done.Before, "after", done.After,
			"live", done.Live, "writesPaused", done.Paused.Round(time.Millisecond), "copiedAgain", done.Again, "err", err)
	}
	if err != nil {
		return fmt.Errorf("compacting the metadata store: %w", err)
	}
	return nil
}

// lower lowers each origin of floor to what v holds of it.
func lower(floor, v metalog.Vector) {
	for origin, seq := range floor {
		floor[origin] = min(seq, v[origin])
	}
}

// covers reports whether a holds everything b does.
func covers(a, b metalog.Vector) bool {
	for origin, seq := range b {
		if a[origin] < seq {
			return false
		}
	}
	return true
}
