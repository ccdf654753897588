package placement

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/filesystem"
)

// Cache keeps recently read blobs of a remote store (S3) on local disk,
// least recently used out first, so a hot layer is read from the bucket
// once per member rather than once per request. The copy on disk is
// verified against its digest when it is filled. Its methods may be called
// concurrently.
type Cache struct {
	remote storage.BlobStore
	disk   *filesystem.Store
	limit  int64

	mu      sync.Mutex
	lru     *list.List // of *cacheEntry, most recent first
	entries map[digest.Digest]*list.Element
	size    int64
	filling map[digest.Digest]chan struct{} // closed when a fill ends
	wg      sync.WaitGroup                  // background fills
}

type cacheEntry struct {
	d    digest.Digest
	size int64
}

// NewCache opens the cache of remote in dir, holding about limit bytes,
// and indexes what an earlier run left there.
func NewCache(ctx context.Context, remote storage.BlobStore, dir string, limit int64) (*Cache, error) {
	disk, err := filesystem.New(dir)
	if err != nil {
		return nil, fmt.Errorf("blob cache: %w", err)
	}
	c := &Cache{remote: remote, disk: disk, limit: limit, lru: list.New(),
		entries: map[digest.Digest]*list.Element{}, filling: map[digest.Digest]chan struct{}{}}
	err = disk.Walk(ctx, func(d digest.Digest, size int64) error {
		c.entries[d] = c.lru.PushBack(&cacheEntry{d, size})
		c.size += size
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("blob cache: %w", err)
	}
	c.evict(ctx)
	return c, nil
}

// Open returns blob d from the cache. On a miss the first reader is served
// straight from the remote store while the cache fills in the background;
// readers arriving during the fill wait for it and read from disk, so a
// hot blob is fetched from the remote store about once.
func (c *Cache) Open(ctx context.Context, d digest.Digest) (storage.Blob, error) {
	for {
		c.mu.Lock()
		if e, ok := c.entries[d]; ok {
			c.lru.MoveToFront(e)
			c.mu.Unlock()
			b, err := c.disk.Open(ctx, d)
			if !errors.Is(err, storage.ErrBlobUnknown) {
				return b, err
			}
			c.Forget(d) // evicted between the lookup and the open
			continue
		}
		if wait, ok := c.filling[d]; ok {
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		c.filling[d] = done
		c.mu.Unlock()
		b, err := c.remote.Open(ctx, d)
		if err != nil {
			c.filled(d, done)
			return nil, err
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			fctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			_ = c.fill(fctx, d) // on failure a later reader fills it
			c.filled(d, done)
		}()
		return b, nil
	}
}

// filled ends the fill of blob d, waking its waiters.
func (c *Cache) filled(d digest.Digest, done chan struct{}) {
	c.mu.Lock()
	delete(c.filling, d)
	close(done)
	c.mu.Unlock()
}

// Wait returns once background fills have ended.
func (c *Cache) Wait() { c.wg.Wait() }

// Usage returns how many blobs the cache holds on disk and their bytes.
func (c *Cache) Usage() (blobs, bytes int64) { return c.disk.Usage() }

// purgeFills removes the bytes of fills that a crash interrupted before
// cutoff.
func (c *Cache) purgeFills(ctx context.Context, cutoff time.Time) error {
	return c.disk.PurgeUploads(ctx, cutoff, func(string) bool { return false })
}

// fill copies blob d from the remote store to disk.
func (c *Cache) fill(ctx context.Context, d digest.Digest) error {
	src, err := c.remote.Open(ctx, d)
	if err != nil {
		return err
	}
	defer src.Close()
	w, err := c.disk.Writer(ctx, "fill-"+d.Encoded(), nil)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, src); err != nil {
		_ = w.Cancel(ctx)
		return fmt.Errorf("cache %s: %w", d, err)
	}
	size := w.Size()
	if err := w.Commit(ctx, d); err != nil {
		return fmt.Errorf("cache %s: %w", d, err)
	}
	c.mu.Lock()
	if _, ok := c.entries[d]; !ok {
		c.entries[d] = c.lru.PushFront(&cacheEntry{d, size})
		c.size += size
	}
	c.mu.Unlock()
	c.evict(ctx)
	return nil
}

// evict removes least recently used blobs until the cache fits its limit.
// Open files stay readable until closed.
func (c *Cache) evict(ctx context.Context) {
	for {
		c.mu.Lock()
		back := c.lru.Back()
		if c.size <= c.limit || back == nil || back == c.lru.Front() {
			c.mu.Unlock()
			return
		}
		e := back.Value.(*cacheEntry)
		c.lru.Remove(back)
		delete(c.entries, e.d)
		c.size -= e.size
		c.mu.Unlock()
		_ = c.disk.Delete(ctx, e.d)
	}
}

// Disk is the store of the cache's files, for a scrub to read back; a copy
// it moves aside must then be forgotten (Forget), to be read again from
// the remote store.
func (c *Cache) Disk() *filesystem.Store { return c.disk }

// Forget drops blob d from the index and the disk (the remote store lost
// it, or it vanished from disk).
func (c *Cache) Forget(d digest.Digest) {
	c.mu.Lock()
	if e, ok := c.entries[d]; ok {
		c.lru.Remove(e)
		delete(c.entries, d)
		c.size -= e.Value.(*cacheEntry).size
	}
	c.mu.Unlock()
	_ = c.disk.Delete(context.Background(), d)
}
