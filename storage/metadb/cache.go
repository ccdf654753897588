package metadb

import (
	"sync"

	"github.com/atollhq/atoll/storage"
)

// DefaultCacheSize is how many bytes of manifests the store keeps in
// memory (Options.CacheSize).
const DefaultCacheSize = 64 << 20

// cacheOverhead is what one cached manifest costs besides its content:
// the decoded record, its slot and its place in the map.
const cacheOverhead = 512

// A cache keeps recently read manifest records in memory, up to a byte
// budget, and when full evicts by the clock (second chance): a hand goes
// round the slots, evicts the first record not read since it last
// passed, and clears the mark of each it passes that was. It is safe for
// concurrent use; the records it returns are shared and must not be
// modified.
//
// The slots are one slice and the map holds their indexes, so neither a
// hit nor an eviction follows pointers: at a million manifests, where
// nearly every read misses, a least-recently-used list cost each miss
// three cache misses to unlink its tail and link the new entry (1.25 us
// of a GET by profile, 50 of the store's 220 ms over 40,000), and each
// hit two more to move its entry to the front. The clock evicts about
// what such a list does (exactly it while every record is read at most
// once between two passes of the hand).
type cache struct {
	mu    sync.Mutex
	max   int64
	used  int64
	slots []slot
	free  []int32 // indexes of empty slots
	hand  int     // the next slot the clock looks at
	items map[dkey]int32
}

type slot struct {
	m    *storage.Manifest // nil: empty
	k    dkey
	cost int64
	read bool // read since the hand last passed
}

// newCache returns a cache of max bytes; max <= 0 caches nothing.
func newCache(max int64) *cache {
	return &cache{max: max, items: map[dkey]int32{}}
}

func (c *cache) get(k dkey) *storage.Manifest {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.items[k]; ok {
		c.slots[i].read = true
		return c.slots[i].m
	}
	return nil
}

func (c *cache) put(k dkey, m *storage.Manifest) {
	cost := int64(len(m.Content)) + cacheOverhead
	c.mu.Lock()
	defer c.mu.Unlock()
	if cost > c.max/8 { // one large manifest must not flush the rest
		return
	}
	if i, ok := c.items[k]; ok {
		c.drop(i)
	}
	// Each turn of the hand evicts or clears a mark, so two turns round
	// the slots evict as many as there are: enough, as cost <= max.
	for c.used+cost > c.max {
		c.advance()
	}
	var i int32
	if n := len(c.free); n > 0 {
		i, c.free = c.free[n-1], c.free[:n-1]
	} else {
		i = int32(len(c.slots))
		c.slots = append(c.slots, slot{})
	}
	c.slots[i] = slot{m: m, k: k, cost: cost}
	c.items[k] = i
	c.used += cost
}

// advance moves the hand one slot on, evicting the record there unless
// it was read since the hand last passed.
func (c *cache) advance() {
	if c.hand >= len(c.slots) {
		c.hand = 0
	}
	s := &c.slots[c.hand]
	switch {
	case s.m == nil:
	case s.read:
		s.read = false
	default:
		c.drop(int32(c.hand))
	}
	c.hand++
}

func (c *cache) forget(k dkey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.items[k]; ok {
		c.drop(i)
	}
}

// drop empties slot i.
func (c *cache) drop(i int32) {
	s := &c.slots[i]
	delete(c.items, s.k)
	c.used -= s.cost
	*s = slot{}
	c.free = append(c.free, i)
}
