// Package fence keeps online garbage collection from deleting a blob that
// a client may still use. Every member has one Fence; the registry API
// tells it what clients learn and what writes use, and a collection asks
// every member's Fence before it deletes anything.
//
// The invariant, held on one node and in a cluster, whatever the grace
// period (zero included):
//
//	A blob is deleted only if no manifest acknowledged before, during or
//	after the collection references it, and a blob a client was told
//	exists (HEAD 200, mount 201, upload 201) survives until a manifest in
//	that repository has used it or Window has passed.
//
// The design is a mark phase fenced by a write barrier, with the decision
// taken in two rounds across all members, each deciding under its own
// lock (two-phase commit, as in a distributed transaction):
//
//  1. Condemn: each member refuses blobs that a write in progress uses or
//     that it told a client about within Window, and condemns the rest.
//     From then on it answers HEAD for a condemned blob with 404 (so
//     clients upload it again), and a write that uses one revives it.
//     The member also refuses the blobs its own manifests reference: it
//     marks them once per collection, when the collection first reaches
//     it, having raised a write barrier that from then on records every
//     blob a stored manifest references. A manifest acknowledged before
//     the barrier is in the mark; one acknowledged after it is recorded;
//     one in progress holds its blobs and so refuses them.
//  2. Commit: each member confirms the blobs it still holds condemned,
//     which become deleting; a write that uses a deleting blob waits.
//  3. The collector deletes only blobs every member confirmed, then
//     releases them everywhere; waiting writes go on and learn that the
//     blob is gone (a manifest PUT then answers MANIFEST_BLOB_UNKNOWN, an
//     upload writes the blob again).
//
// A member that does not answer a round makes the collector spare the
// whole batch. Condemnations that are never released (the collector
// died) expire after Expiry; a deleting blob that expires is treated as
// gone, which only costs an existence check.
package fence

import (
	"context"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// Config tunes a Fence.
type Config struct {
	// Window is how long a blob a client was told about is spared while
	// no manifest in its repository uses it: the time a push may take
	// between checking a layer and pushing the manifest. The member uses
	// its upload purge age. Default 24h.
	Window time.Duration
	// Expiry ends condemnations whose collector went silent. Default 2m.
	Expiry time.Duration
	// GoneTTL is how long a deleted blob is double-checked by writes that
	// use it (longer than metadata takes to replicate). Default 10m.
	GoneTTL time.Duration
}

func (c *Config) applyDefaults() {
	if c.Window <= 0 {
		c.Window = 24 * time.Hour
	}
	if c.Expiry <= 0 {
		c.Expiry = 2 * time.Minute
	}
	if c.GoneTTL <= 0 {
		c.GoneTTL = 10 * time.Minute
	}
}

// Exists reports whether blob d is held anywhere now. A Fence asks it
// about blobs a collection deleted recently before calling them missing.
type Exists func(ctx context.Context, d digest.Digest) bool

// Fence is one member's part of the collection protocol. All methods may
// be called concurrently. Its state is three parts, each a plain value
// guarded by mu, so that a round decides over all of them at once: tells
// (what clients were told), holds (what collections condemned or delete,
// what writes use, what was deleted) and collections (those in progress
// here and their write barrier).
type Fence struct {
	cfg    Config
	exists Exists
	now    func() time.Time

	mu          sync.Mutex
	tells       tells
	holds       holds
	collections collections
	changed     chan struct{} // closed and replaced when a hold ends
	swept       time.Time     // when expire last forgot old entries
}

// New returns a Fence. exists may be nil on a member that holds every
// blob it serves (then its local store answers).
func New(cfg Config, exists Exists) *Fence {
	cfg.applyDefaults()
	return &Fence{
		cfg:         cfg,
		exists:      exists,
		now:         time.Now,
		tells:       newTells(),
		holds:       newHolds(),
		collections: newCollections(),
		changed:     make(chan struct{}),
	}
}

// Told records that a client is about to be told blob d exists in repo
// (HEAD 200). It reports false when a collection has condemned d: the
// client must then be told d does not exist, and will upload it again.
func (f *Fence) Told(repo string, d digest.Digest) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expire()
	if f.holds.condemned(d) {
		return false
	}
	f.tells.add(repo, d, f.now())
	return true
}

// Store holds blob d while an upload's commit or a mount into repo
// writes it. It waits while a collection deletes d, and reports whether a
// collection deleted d and no member holds it now (a mount must then not
// link it). done(true), after the client was answered 201, counts as
// telling the client d exists.
func (f *Fence) Store(ctx context.Context, repo string, d digest.Digest) (missing bool, done func(acked bool), err error) {
	ds := []digest.Digest{d}
	gone, err := f.claim(ctx, ds)
	if err != nil {
		return false, nil, err
	}
	return len(gone) > 0, func(acked bool) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.holds.release(ds)
		if acked {
			f.holds.found(d)
			f.tells.add(repo, d, f.now())
		}
	}, nil
}

// Reference holds blobs ds while a manifest PUT into repo that references
// them completes. It waits while a collection deletes one of them, and
// returns those a collection deleted that no member holds now. done(true),
// after the manifest was stored, ends the wait of what clients were told
// of ds in repo: the manifest used them.
func (f *Fence) Reference(ctx context.Context, repo string, ds []digest.Digest) (missing []digest.Digest, done func(acked bool), err error) {
	start := f.now()
	missing, err = f.claim(ctx, ds)
	if err != nil {
		return nil, nil, err
	}
	return missing, func(acked bool) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.holds.release(ds)
		if !acked {
			return
		}
		now := f.now()
		for _, d := range ds {
			f.collections.record(d, now) // the write barrier
			f.tells.usedBy(repo, d, start)
		}
	}, nil
}

// claim holds ds and returns those a collection deleted recently that no
// member holds now.
func (f *Fence) claim(ctx context.Context, ds []digest.Digest) (missing []digest.Digest, err error) {
	recent, err := f.hold(ctx, ds)
	if err != nil {
		return nil, err
	}
	for _, d := range recent {
		if f.exists == nil || !f.exists(ctx, d) {
			missing = append(missing, d)
			continue
		}
		f.mu.Lock()
		f.holds.found(d)
		f.mu.Unlock()
	}
	return missing, nil
}

// hold waits until no collection deletes any of ds, then revives the
// condemned ones and counts a write in progress on each. It returns
// those of ds deleted by a collection recently.
func (f *Fence) hold(ctx context.Context, ds []digest.Digest) (recent []digest.Digest, err error) {
	f.mu.Lock()
	for {
		f.expire()
		if !f.holds.deleting(ds) {
			break
		}
		wait := f.changed
		f.mu.Unlock()
		t := time.NewTimer(time.Second) // an expiry is noticed by the next call
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-wait:
		case <-t.C:
		}
		t.Stop()
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	return f.holds.take(ds), nil
}

// Mark returns the blobs this member's manifests reference.
type Mark func() map[digest.Digest]bool

// Condemn is the first round of collection id: it refuses the blobs of ds
// that this member's manifests referenced when the collection first
// reached it (mark tells, once per collection), that a manifest stored
// here used since, that a write in progress uses, or that a client was
// told about within Window; it condemns the others (on a dry run it only
// reports).
func (f *Fence) Condemn(id string, ds []digest.Digest, dryRun bool, mark Mark) (refused []digest.Digest) {
	f.mu.Lock()
	f.expire()
	e := f.collections.join(id, f.now()) // the barrier is up from here, before the mark
	f.mu.Unlock()
	e.once.Do(func() { e.marked = mark() })

	f.mu.Lock()
	defer f.mu.Unlock()
	cutoff := f.now().Add(-f.cfg.Window)
	for _, d := range ds {
		if e.marked[d] || f.collections.usedSince(d, e.start) || f.holds.busy(d) || f.tells.since(d, cutoff) {
			refused = append(refused, d)
			continue
		}
		if !dryRun {
			f.holds.condemn(id, d)
		}
	}
	return refused
}

// Commit is the second round: of ds, the blobs epoch still holds
// condemned become deleting and the others are refused.
func (f *Fence) Commit(epoch string, ds []digest.Digest) (refused []digest.Digest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expire()
	f.collections.heard(epoch, f.now())
	for _, d := range ds {
		if !f.holds.commit(epoch, d) {
			refused = append(refused, d)
		}
	}
	return refused
}

// Release ends epoch's holds on ds; deleted are the blobs it deleted.
// Writes waiting on them go on.
func (f *Fence) Release(epoch string, ds, deleted []digest.Digest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	for _, d := range deleted {
		f.holds.markGone(d, now)
	}
	for _, d := range ds {
		f.holds.drop(epoch, d)
	}
	f.collections.heard(epoch, f.now())
	f.signal()
}

// End ends collection id here: its remaining holds go, and its barrier.
func (f *Fence) End(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.end(map[string]bool{id: true}, false)
}

func (f *Fence) signal() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// end ends collections ids: their holds (a blob they were deleting
// counts as gone when they went silent) and, once none is left, the
// barrier. It runs under f.mu.
func (f *Fence) end(ids map[string]bool, silent bool) {
	now := f.now()
	f.collections.end(ids)
	f.holds.end(ids, silent, now)
	f.signal()
}

// expire ends the collections not heard of for Expiry and forgets old
// tells and deletions. It runs under f.mu.
func (f *Fence) expire() {
	now := f.now()
	if stale := f.collections.stale(now, f.cfg.Expiry); len(stale) > 0 {
		f.end(stale, true)
	}
	if now.Sub(f.swept) < time.Second {
		return
	}
	f.swept = now
	f.holds.forgetGone(now.Add(-f.cfg.GoneTTL))
	f.tells.expire(now.Add(-f.cfg.Window))
}
