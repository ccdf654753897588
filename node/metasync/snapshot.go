package metasync

import (
	"context"
	"fmt"
	"time"

	"github.com/atollhq/atoll/storage/metadb"
	"github.com/atollhq/atoll/storage/metalog"
)

// Snapshots is the part of the local log that trimming and snapshots use
// (storage/metadb's Store). All methods may be called concurrently.
type Snapshots interface {
	// SnapshotChunk returns up to limit entries (each key's latest op,
	// tombstones included) with keys after after; the first chunk carries
	// the vector the state covers.
	SnapshotChunk(after string, limit int) (metalog.Chunk, error)
	// Install merges the chunk asked for after after (entries in key
	// order; consecutive chunks may be merged into one): entries by last
	// writer wins, and stored keys of its range that it lacks and that
	// are stamped before cutoff are deleted. The vector is left alone;
	// the install's progress is recorded (InstallProgress).
	Install(ctx context.Context, after string, c metalog.Chunk, cutoff uint64) error
	// InstallProgress says how far an install begun and not finished
	// (Advance) got: the vector it covers and the last key installed.
	InstallProgress() (metadb.InstallProgress, bool, error)
	// Advance raises the vector to at least v and ends the install.
	Advance(ctx context.Context, v metalog.Vector) error
	// Trim deletes the batches at or below floor from the log.
	Trim(ctx context.Context, floor metalog.Vector) (int, error)
	// Tombstones returns the deleted entries stamped before cutoff.
	Tombstones(cutoff uint64) ([]metalog.Op, error)
	// DropTombstones deletes those of ts nothing replaced since.
	DropTombstones(ctx context.Context, ts []metalog.Op) (int, error)
}

// chunkTries is how often a chunk is asked for before the snapshot is
// given up (the next pull resumes it: resumePoint).
const chunkTries = 3

const (
	// prefetchBytes bounds the chunks fetched and not installed yet, the
	// ones being installed included (chunkBytes, in MiB): the fetch goes
	// on while an install transaction commits, and what it fetched
	// meanwhile goes into the next transaction, but a joining member's
	// memory does not grow with how far the fetch runs ahead.
	prefetchBytes = 64 << 20
	// installBytes is about how much of the snapshot one install
	// transaction takes: consecutive chunks fetched meanwhile are merged
	// into one, so the fsyncs of a commit are paid per tens of MiB.
	installBytes = 32 << 20
)

// fetched is a chunk of a snapshot, asked for after the key after.
type fetched struct {
	after string
	c     metalog.Chunk
	err   error
	mib   int // of the prefetch budget it holds
}

// budget is the prefetch budget: a token a MiB of chunks fetched and not
// installed yet.
type budget chan struct{}

func newBudget() budget { return make(budget, prefetchBytes>>20) }

// take waits until n MiB (at most the whole budget) are free and takes
// them; it returns how many it took, or ctx's error.
func (b budget) take(ctx context.Context, n int) (int, error) {
	n = min(max(n, 1), cap(b))
	for i := range n {
		select {
		case b <- struct{}{}:
		case <-ctx.Done():
			b.give(i)
			return 0, ctx.Err()
		}
	}
	return n, nil
}

// give frees n MiB taken.
func (b budget) give(n int) {
	for range n {
		<-b
	}
}

// fetchSnapshot sends member p's snapshot after the key from ("": all of
// it) to out, chunk after chunk, each
// asked again on failure from where it stopped, until the last chunk or an
// error (sent last) or ctx is done. It closes out.
func (r *snapshotter) fetchSnapshot(ctx context.Context, t Transport, p, from string, b budget, out chan<- fetched) {
	defer close(out)
	after := from
	for {
		c, err := t.Snapshot(ctx, p, after, r.cfg.SnapshotChunk)
		for try := 1; err != nil && try < chunkTries && ctx.Err() == nil; try++ {
			c, err = t.Snapshot(ctx, p, after, r.cfg.SnapshotChunk)
		}
		if err != nil {
			err = fmt.Errorf("snapshot of %s after %q: %w", p, after, err)
		}
		f := fetched{after: after, c: c, err: err}
		if err == nil {
			// Taken once the chunk is here: the fetch runs at most one
			// chunk past the budget.
			if f.mib, err = b.take(ctx, (chunkBytes(c)+1<<20-1)>>20); err != nil {
				return
			}
		}
		select {
		case out <- f:
		case <-ctx.Done():
			return
		}
		if err != nil || c.Next == "" {
			return
		}
		after = c.Next
	}
}

// chunkBytes estimates what chunk c takes.
func chunkBytes(c metalog.Chunk) int {
	n := 0
	for _, op := range c.Entries {
		n += len(op.Key) + len(op.Value) + 32
	}
	return n
}

// chunkQueue hands out the chunks a fetchSnapshot sends, merged.
type chunkQueue struct {
	in      <-chan fetched
	pending *fetched // taken from in, not handed out yet
}

func (q *chunkQueue) take() (fetched, bool) {
	if f := q.pending; f != nil {
		q.pending = nil
		return *f, true
	}
	f, ok := <-q.in
	return f, ok
}

// next returns the next chunk to install: the one in front, with the
// chunks fetched already behind it merged in, up to installBytes (a chunk
// continues the one before it, so their entries concatenate). An error is
// handed out on its own, after what came before it. ok is false once the
// fetcher stopped and everything was handed out.
func (q *chunkQueue) next() (f fetched, ok bool) {
	if f, ok = q.take(); !ok || f.err != nil {
		return f, ok
	}
	size := chunkBytes(f.c)
	for f.c.Next != "" && size < installBytes {
		select {
		case g, more := <-q.in:
			if !more {
				return f, true
			}
			if g.err != nil {
				q.pending = &g
				return f, true
			}
			f.c.Entries = append(f.c.Entries, g.c.Entries...)
			f.c.Next = g.c.Next
			f.mib += g.mib
			size += chunkBytes(g.c)
		default:
			return f, true
		}
	}
	return f, true
}

// installSnapshot installs member p's snapshot: chunks are fetched ahead
// (fetchSnapshot) while those fetched are installed, several in one
// transaction when they queued up; then it raises the vector to what the
// snapshot covers, so the log after it is what remains to pull.
//
// Last writer wins across the boundary: entries carry their stamps and
// merge like ops, so neither a snapshot entry older than what is held nor
// a batch older than the snapshot replayed after it replaces a newer
// value. A held key the snapshot lacks is deleted only when stamped
// before the horizon: p kept every tombstone younger than that.
//
// The vector is raised only once every chunk is in: an install cut short
// (an error, ctx, a crash) leaves the member behind, and the next pull
// resumes it (resumePoint).
func (r *snapshotter) installSnapshot(ctx context.Context, t Transport, p string) error {
	start := time.Now()
	cutoff := metadb.StampAt(start.Add(-r.cfg.Horizon))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the fetcher when the install fails
	from, vec, resumed, err := r.resumePoint(ctx, t, p)
	if err != nil {
		return err
	}
	if resumed && from == "" {
		return r.log.Advance(ctx, vec) // every chunk was in
	}
	in := make(chan fetched, prefetchBytes>>20) // the budget bounds it
	b := newBudget()
	go r.fetchSnapshot(ctx, t, p, from, b, in)
	q := chunkQueue{in: in}
	var (
		entries  int
		installs int
		waited   time.Duration // for chunks: the fetch is behind
		last     = start
	)
	for {
		t0 := time.Now()
		f, ok := q.next()
		waited += time.Since(t0)
		if !ok {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fmt.Errorf("snapshot of %s ended without its last chunk", p)
		}
		if f.err != nil {
			return f.err
		}
		switch {
		case f.after == "":
			vec = f.c.Vector
		case resumed && installs == 0:
			f.c.Vector = vec // recorded with the progress
		}
		if err := r.log.Install(ctx, f.after, f.c, cutoff); err != nil {
			return err
		}
		b.give(f.mib)
		entries += len(f.c.Entries)
		installs++
		r.catching.set("installing %s's snapshot: %d entries in %s", p, entries, time.Since(start).Round(time.Second))
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			r.slog.Info("installing a metadata snapshot", "member", p, "entries", entries)
		}
		if f.c.Next == "" {
			break
		}
	}
	if err := r.log.Advance(ctx, vec); err != nil {
		return err
	}
	r.slog.Info("installed a metadata snapshot", "member", p, "entries", entries, "transactions", installs,
		"took", time.Since(start).Round(time.Millisecond), "waiting for chunks", waited.Round(time.Millisecond))
	return nil
}

// resumePoint returns where an install from member p starts: after the
// last key an install cut short got to, when there is one begun less than
// half the horizon ago, covering what both it and p cover; otherwise
// from the first key (from "", vec nil).
//
// Resuming is safe with any member: the keys installed hold at least
// what the earlier install's vector says, and p's keys fetched from now
// on at least what p has applied now, so the snapshot as a whole holds
// at least their minimum. A key p deleted is still deleted here: its
// tombstone stays until every member has it, and one older than the
// horizon is trusted only if the install began within it.
func (r *snapshotter) resumePoint(ctx context.Context, t Transport, p string) (from string, vec metalog.Vector, resumed bool, err error) {
	prog, ok, err := r.log.InstallProgress()
	if err != nil || !ok || time.Since(prog.Began) > r.cfg.Horizon/2 {
		return "", nil, false, err
	}
	if prog.After == "" {
		return "", prog.Vector, true, nil
	}
	theirs, err := t.Vector(ctx, p) // before the chunks: they hold at least this
	if err != nil {
		return "", nil, false, err
	}
	vec = metalog.Vector{}
	for origin, seq := range prog.Vector {
		if n := min(seq, theirs[origin]); n > 0 {
			vec[origin] = n
		}
	}
	r.slog.Info("resuming a metadata snapshot install", "member", p, "after", prog.After)
	return prog.After, vec, true, nil
}
