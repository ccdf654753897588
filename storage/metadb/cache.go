package metadb

import (
	"sync"

	"github.com/atollhq/atoll/storage"
)

// DefaultCacheSize is how many bytes of manifests the store keeps in
// memory (Options.CacheSize).
const DefaultCacheSize = 64 << 20

// cacheOverhead is what one cached manifest costs besides its content:
// the decoded record, its entry and its slot in the map.
const cacheOverhead = 512

// A cache keeps recently read manifest records in memory, least recently
// used first out, up to a byte budget. It is safe for concurrent use; the
// records it returns are shared and must not be modified.
//
// Entries are keyed by the index's digest keys and linked through
// themselves: a put allocates one entry, where container/list and digest
// strings as keys cost another allocation and a longer hash on every read
// that misses at a million manifests.
type cache struct {
	mu    sync.Mutex
	max   int64
	used  int64
	lru   cached // sentinel: lru.next is the most recently used, lru.prev the least
	items map[dkey]*cached
}

type cached struct {
	prev, next *cached
	k          dkey
	m          *storage.Manifest
	cost       int64
}

// newCache returns a cache of max bytes; max <= 0 caches nothing.
func newCache(max int64) *cache {
	c := &cache{max: max, items: map[dkey]*cached{}}
	c.lru.prev, c.lru.next = &c.lru, &c.lru
	return c
}

func (c *cache) get(k dkey) *storage.Manifest {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.items[k]; e != nil {
		c.unlink(e)
		c.pushFront(e)
		return e.m
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
	if e := c.items[k]; e != nil {
		c.drop(e)
	}
	// Room is made first, so that the entry of the last record out
	// holds the new one: a full cache allocates none.
	var e *cached
	for c.used+cost > c.max && c.lru.prev != &c.lru {
		e = c.lru.prev
		c.drop(e)
	}
	if e == nil {
		e = new(cached)
	}
	*e = cached{k: k, m: m, cost: cost}
	c.items[k] = e
	c.pushFront(e)
	c.used += cost
}

func (c *cache) forget(k dkey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.items[k]; e != nil {
		c.drop(e)
	}
}

func (c *cache) pushFront(e *cached) {
	e.prev, e.next = &c.lru, c.lru.next
	e.next.prev = e
	c.lru.next = e
}

func (c *cache) unlink(e *cached) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *cache) drop(e *cached) {
	c.unlink(e)
	delete(c.items, e.k)
	c.used -= e.cost
}
