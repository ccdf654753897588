package fence

import (
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// The parts of a Fence's state. None has a lock of its own: Fence.mu
// guards them all, so that each round decides under one lock over what
// clients were told, what writes hold and what collections run.

// tells are what clients were told exists: blob → repository → when, kept
// until a manifest in that repository used the blob or Window passed.
type tells struct {
	at    map[digest.Digest]map[string]time.Time
	dirty bool // changed since the last Save
}

func newTells() tells { return tells{at: map[digest.Digest]map[string]time.Time{}} }

// add records that a client was told of d in repo at now.
func (t *tells) add(repo string, d digest.Digest, now time.Time) {
	m := t.at[d]
	if m == nil {
		m = map[string]time.Time{}
		t.at[d] = m
	}
	m[repo] = now
	t.dirty = true
}

// since reports whether a client was told of d after cutoff.
func (t *tells) since(d digest.Digest, cutoff time.Time) bool {
	for _, at := range t.at[d] {
		if at.After(cutoff) {
			return true
		}
	}
	return false
}

// usedBy ends the tell of d in repo made no later than start: a manifest
// there, whose PUT started at start, used d.
func (t *tells) usedBy(repo string, d digest.Digest, start time.Time) {
	if at, ok := t.at[d][repo]; ok && !at.After(start) {
		t.dirty = true
		delete(t.at[d], repo)
		if len(t.at[d]) == 0 {
			delete(t.at, d)
		}
	}
}

// expire forgets the tells made no later than cutoff.
func (t *tells) expire(cutoff time.Time) {
	for d, m := range t.at {
		for repo, at := range m {
			if !at.After(cutoff) {
				t.dirty = true
				delete(m, repo)
			}
		}
		if len(m) == 0 {
			delete(t.at, d)
		}
	}
}

// holds are what collections and writes hold: the blobs condemned or
// being deleted, per collection, the writes in progress using each blob,
// and the blobs collections deleted recently.
type holds struct {
	held  map[digest.Digest]map[string]bool // blob → collection epoch → deleting (else condemned)
	inUse map[digest.Digest]int             // writes in progress that use the blob
	gone  map[digest.Digest]time.Time       // deleted by a collection, when
}

func newHolds() holds {
	return holds{
		held:  map[digest.Digest]map[string]bool{},
		inUse: map[digest.Digest]int{},
		gone:  map[digest.Digest]time.Time{},
	}
}

// condemned reports whether a collection condemned or deletes d.
func (h *holds) condemned(d digest.Digest) bool { return len(h.held[d]) > 0 }

// busy reports whether a write in progress uses d.
func (h *holds) busy(d digest.Digest) bool { return h.inUse[d] > 0 }

// deleting reports whether a collection deletes one of ds.
func (h *holds) deleting(ds []digest.Digest) bool {
	for _, d := range ds {
		for _, del := range h.held[d] {
			if del {
				return true
			}
		}
	}
	return false
}

// take revives ds (the collections' commit rounds then refuse them),
// counts a write in progress on each, and returns those deleted
// recently. No collection may be deleting one of ds.
func (h *holds) take(ds []digest.Digest) (recent []digest.Digest) {
	for _, d := range ds {
		delete(h.held, d)
		h.inUse[d]++
		if _, ok := h.gone[d]; ok {
			recent = append(recent, d)
		}
	}
	return recent
}

// release ends a write in progress on each of ds.
func (h *holds) release(ds []digest.Digest) {
	for _, d := range ds {
		if h.inUse[d]--; h.inUse[d] <= 0 {
			delete(h.inUse, d)
		}
	}
}

// condemn condemns d for collection epoch.
func (h *holds) condemn(epoch string, d digest.Digest) {
	if h.held[d] == nil {
		h.held[d] = map[string]bool{}
	}
	h.held[d][epoch] = false
}

// commit makes d deleting for epoch if epoch still holds it condemned and
// no write uses it, and reports whether it did.
func (h *holds) commit(epoch string, d digest.Digest) bool {
	if _, ok := h.held[d][epoch]; !ok || h.inUse[d] > 0 {
		return false
	}
	h.held[d][epoch] = true
	return true
}

// drop ends epoch's hold on d.
func (h *holds) drop(epoch string, d digest.Digest) {
	if m := h.held[d]; m != nil {
		delete(m, epoch)
		if len(m) == 0 {
			delete(h.held, d)
		}
	}
}

// end ends the holds of collections ids; when they went silent, a blob
// they were deleting counts as gone at now.
func (h *holds) end(ids map[string]bool, silent bool, now time.Time) {
	for d, m := range h.held {
		for id, del := range m {
			if ids[id] {
				if del && silent {
					h.gone[d] = now
				}
				delete(m, id)
			}
		}
		if len(m) == 0 {
			delete(h.held, d)
		}
	}
}

// markGone records that a collection deleted d at now.
func (h *holds) markGone(d digest.Digest, now time.Time) { h.gone[d] = now }

// found forgets that d was deleted: it is held again.
func (h *holds) found(d digest.Digest) { delete(h.gone, d) }

// forgetGone forgets the deletions before cutoff.
func (h *holds) forgetGone(cutoff time.Time) {
	for d, at := range h.gone {
		if at.Before(cutoff) {
			delete(h.gone, d)
		}
	}
}

// collections are the collections in progress on this member, and the
// write barrier they raised: the blobs stored manifests referenced since.
type collections struct {
	epochs map[string]*epoch
	used   map[digest.Digest]time.Time // empty when no collection runs
}

// epoch is a collection as one member sees it.
type epoch struct {
	start  time.Time // when it first reached this member: its barrier is up since
	last   time.Time // when it was last heard of
	once   sync.Once
	marked map[digest.Digest]bool // what this member's manifests referenced at start
}

func newCollections() collections {
	return collections{epochs: map[string]*epoch{}, used: map[digest.Digest]time.Time{}}
}

// join returns collection id, heard of at now, starting it if it is new.
func (c *collections) join(id string, now time.Time) *epoch {
	e := c.epochs[id]
	if e == nil {
		e = &epoch{start: now}
		c.epochs[id] = e
	}
	e.last = now
	return e
}

// heard records that collection id, if it runs here, was heard of at now.
func (c *collections) heard(id string, now time.Time) {
	if e := c.epochs[id]; e != nil {
		e.last = now
	}
}

// record is the write barrier: while a collection runs, it records that
// a stored manifest referenced d at now.
func (c *collections) record(d digest.Digest, now time.Time) {
	if len(c.epochs) > 0 {
		c.used[d] = now
	}
}

// usedSince reports whether the barrier recorded d at start or later.
func (c *collections) usedSince(d digest.Digest, start time.Time) bool {
	return !c.used[d].Before(start)
}

// stale returns the collections not heard of for longer than expiry.
func (c *collections) stale(now time.Time, expiry time.Duration) map[string]bool {
	stale := map[string]bool{}
	for id, e := range c.epochs {
		if now.Sub(e.last) > expiry {
			stale[id] = true
		}
	}
	return stale
}

// end forgets collections ids and, once none is left, lowers the barrier.
func (c *collections) end(ids map[string]bool) {
	for id := range ids {
		delete(c.epochs, id)
	}
	if len(c.epochs) == 0 {
		clear(c.used)
	}
}
