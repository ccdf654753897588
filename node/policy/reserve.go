package policy

import (
	"fmt"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
)

// Admissions. Each quota is decided by one member (in a cluster the ring
// owner of the quota's name; on its own, the registry): every write that
// would add bytes to a quota's repositories asks that member first, by
// Reserve, and reports how it ended, by Settle.
//
// Invariant, per quota, on the member deciding it: every admitted write
// is counted from its admission in used + reserved, where used is what
// this member's replicated metadata links to the quota's repositories and
// reserved the bytes of the reservations whose blob or manifest that
// metadata does not link yet (each digest once); and a write is admitted
// only if used + reserved + its size stays within the limit, or if its
// digest is counted already. A reservation ends when this member's
// metadata links its digest (the bytes are in used from then on), when its
// writer reports that it stored nothing, or after Hold without news (a
// writer that died). So the bytes acknowledged to clients never take a
// quota past its limit, as long as (1) a writer reports its outcome, and
// a stored write reaches the deciding member's metadata, within Hold, and
// (2) the ring keeps the quota on the same member meanwhile: a member
// that takes a quota over does not know its predecessor's reservations
// (the one window this leaves, as for immutable tags).

// DefaultHold is how long a reservation lasts without news from its
// writer: from its admission, and again from the writer's report that the
// write is stored (until the metadata shows it).
const DefaultHold = 2 * time.Minute

// quotaState holds the reservations of one quota decided here.
type quotaState struct {
	mu   sync.Mutex // held while a write is decided: one at a time
	next uint64
	held map[uint64]*reservation
}

// reservation is room held for one admitted write.
type reservation struct {
	d       digest.Digest
	size    int64
	expires time.Time
}

// Refusal is a quota's refusal, with the message the client reads. A
// member passes Reason on to the member that asked.
type Refusal struct{ Reason string }

func (r *Refusal) Error() string { return r.Reason + ": " + api.ErrQuotaExceeded.Error() }

// Unwrap makes a Refusal api.ErrQuotaExceeded (403 DENIED).
func (r *Refusal) Unwrap() error { return api.ErrQuotaExceeded }

// Reserve decides whether d (size bytes), linked into repo, fits in the
// quota named quota, and if it does holds the room until Settle or Hold.
// It returns the reservation's id, or a *Refusal naming the quota, its
// usage and its limit. Call it only on the member deciding the quota.
func (q *Quotas) Reserve(quota, repo string, d digest.Digest, size int64) (uint64, error) {
	i, ok := q.index[quota]
	if !ok {
		return 0, fmt.Errorf("no quota named %q here (do the members' configurations differ?)", quota)
	}
	qt, st := &q.quotas[i], &q.states[i]
	match := qt.matcher()
	st.mu.Lock()
	defer st.mu.Unlock()
	now := q.now()
	pending, reserved := q.pending(st, match)
	_, counted := pending[d]
	if !counted && !q.meta.Holds(match, d) {
		used, _ := q.meta.Usage(match)
		if total := used.Bytes + reserved; total+size > int64(qt.Limit) {
			inFlight := ""
			if reserved > 0 {
				inFlight = fmt.Sprintf(" (%s of it by pushes in progress)", human(reserved))
			}
			return 0, &Refusal{Reason: fmt.Sprintf("quota %q of %s: %s used%s of %s, and this push needs %s more",
				qt.Name, repo, human(total), inFlight, human(int64(qt.Limit)), human(size))}
		}
	}
	// Reserved even when counted, so that it counts should the link
	// that counts it go before this write shows.
	st.next++
	st.held[st.next] = &reservation{d: d, size: size, expires: now.Add(q.hold)}
	return st.next, nil
}

// Settle ends reservation id of quota: stored says whether its write
// stored d. A stored write keeps its room until the metadata here shows
// it (or Hold passes); a write that stored nothing frees it at once.
// Unknown ids (expired, or decided before a restart) are ignored.
func (q *Quotas) Settle(quota string, id uint64, stored bool) {
	i, ok := q.index[quota]
	if !ok {
		return
	}
	st := &q.states[i]
	st.mu.Lock()
	defer st.mu.Unlock()
	r, ok := st.held[id]
	switch {
	case !ok:
	case stored:
		r.expires = q.now().Add(q.hold)
	default:
		delete(st.held, id)
	}
}

// Reserved returns the bytes held for writes in progress in quota, as the
// next decision would count them.
func (q *Quotas) Reserved(quota string) int64 {
	i, ok := q.index[quota]
	if !ok {
		return 0
	}
	st := &q.states[i]
	st.mu.Lock()
	defer st.mu.Unlock()
	_, reserved := q.pending(st, q.quotas[i].matcher())
	return reserved
}

// pending drops the reservations of st that ended (expired, or shown by
// the metadata) and returns the others' bytes by digest, and in all.
// st.mu is held.
func (q *Quotas) pending(st *quotaState, match func(string) bool) (map[digest.Digest]int64, int64) {
	now := q.now()
	bytes := map[digest.Digest]int64{}
	for id, r := range st.held {
		if now.After(r.expires) || q.meta.Holds(match, r.d) {
			delete(st.held, id)
			continue
		}
		bytes[r.d] = max(bytes[r.d], r.size)
	}
	var total int64
	for _, size := range bytes {
		total += size
	}
	return bytes, total
}
