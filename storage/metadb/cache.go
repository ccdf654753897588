package metadb

import (
	"container/list"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// DefaultCacheSize is how many bytes of manifests the store keeps in
// memory (Options.CacheSize).
const DefaultCacheSize = 64 << 20

// cacheOverhead is what one cached manifest costs besides its content:
// the decoded record, its list element and map entry.
const cacheOverhead = 512

// A cache keeps recently read manifest records in memory, least recently
// used first out, up to a byte budget. It is safe for concurrent use; the
// records it returns are shared and must not be modified.
type cache struct {
	mu    sync.Mutex
	max   int64
	used  int64
	order *list.List // front: most recently used; values *cached
	items map[digest.Digest]*list.Element
}

type cached struct {
	d    digest.Digest
	m    *storage.Manifest
	cost int64
}

// newCache returns a cache of max bytes; max <= 0 caches nothing.
func newCache(max int64) *cache {
	return &cache{max: max, order: list.New(), items: map[digest.Digest]*list.Element{}}
}

func (c *cache) get(d digest.Digest) *storage.Manifest {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.items[d]; e != nil {
		c.order.MoveToFront(e)
		return e.Value.(*cached).m
	}
	return nil
}

func (c *cache) put(d digest.Digest, m *storage.Manifest) {
	cost := int64(len(m.Content)) + cacheOverhead
	c.mu.Lock()
	defer c.mu.Unlock()
	if cost > c.max/8 { // one large manifest must not flush the rest
		return
	}
	if e := c.items[d]; e != nil {
		c.drop(e)
	}
	c.items[d] = c.order.PushFront(&cached{d: d, m: m, cost: cost})
	c.used += cost
	for c.used > c.max {
		c.drop(c.order.Back())
	}
}

func (c *cache) forget(d digest.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.items[d]; e != nil {
		c.drop(e)
	}
}

func (c *cache) drop(e *list.Element) {
	it := c.order.Remove(e).(*cached)
	delete(c.items, it.d)
	c.used -= it.cost
}
