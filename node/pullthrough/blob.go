package pullthrough

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/storage"
)

// Blob implements api.Upstream: it makes blob d readable through proxied
// repo, fetching it from the upstream unless the blob store has it. It
// returns storage.ErrBlobUnknown when the upstream has no such blob (or
// refuses access) and storage.ErrUnavailable when the upstream fails or
// sends other bytes than d.
//
// Concurrent calls for one digest share one fetch. A caller that joined a
// fetch for another repository tries again, and then only links the stored
// blob once the upstream confirms its repository has it. In a cluster the
// blob's owner fetches it (members.go).
func (c *Cache) Blob(ctx context.Context, repo string, d digest.Digest) error {
	return c.blob(ctx, repo, d, true)
}

// blob is Blob; ask says whether the owner may be asked to fetch.
func (c *Cache) blob(ctx context.Context, repo string, d digest.Digest, ask bool) error {
	rt, up, ok := c.match(repo)
	if !ok {
		return fmt.Errorf("%s is not a pull-through cache: %w", repo, storage.ErrBlobUnknown)
	}
	return c.blobs.get(ctx, rt, up, repo, d, ask)
}

var _ api.CacheHits = (*Cache)(nil)

// BlobHit implements api.CacheHits: a blob served from the cache is a hit.
func (c *Cache) BlobHit(repo string, _ digest.Digest) {
	if rt, _, ok := c.match(repo); ok {
		c.m.hits.WithLabelValues(rt.client.host, "blob").Inc()
	}
}

// fetched is the outcome of a blob fetch for repo.
type fetched struct {
	repo string
	err  error
}

// blobFetcher fetches blobs from the upstreams into the blob store and
// links them into the proxied repositories. Its methods may be called
// concurrently.
type blobFetcher struct {
	blobs   storage.BlobStore
	links   storage.Links
	owners  owners
	m       *metrics
	log     *slog.Logger
	fetches group[fetched] // by digest
}

// get makes blob d readable through repo, whose route is rt and whose name
// upstream is up: see Cache.Blob.
func (f *blobFetcher) get(ctx context.Context, rt *route, up, repo string, d digest.Digest, ask bool) error {
	for range 3 {
		if f.links.BlobLinked(repo, d) {
			return nil
		}
		res, err := f.fetches.do(ctx, d.String(), func(ctx context.Context) (fetched, error) {
			return fetched{repo: repo, err: f.obtain(ctx, rt, up, repo, d, ask)}, nil
		})
		if err != nil {
			return err // ctx ended
		}
		if res.repo == repo {
			return res.err
		}
	}
	if f.links.BlobLinked(repo, d) {
		return nil
	}
	return fmt.Errorf("blob %s of %s: fetches for other repositories kept winning: %w", d, repo, storage.ErrUnavailable)
}

// obtain has the owner of d fetch it when another member owns it and
// ask is set, else (or when the owner is unreachable) fetches it here.
func (f *blobFetcher) obtain(ctx context.Context, rt *route, up, repo string, d digest.Digest, ask bool) error {
	if base, ok := f.owners.owner(d); ok && ask {
		err := f.owners.forwardBlob(ctx, rt, base, repo, d)
		if !errors.Is(err, errUnreachable) {
			return err
		}
		f.log.Warn("the blob's owning member is unreachable; fetching it here", "blob", d, "err", err)
	}
	f.m.misses.WithLabelValues(rt.client.host, "blob").Inc()
	return f.download(ctx, rt, up, repo, d)
}

// download stores blob d from upstream repository up and links it into
// repo. A blob already stored (pulled through another repository, or
// pushed) is linked without a download, but only after a HEAD shows that
// up holds it: otherwise a proxied name would serve any blob whose digest a
// client knows.
func (f *blobFetcher) download(ctx context.Context, rt *route, up, repo string, d digest.Digest) error {
	path := "blobs/" + d.String()
	if size, err := f.blobs.Stat(ctx, d); err == nil {
		hctx, cancel := context.WithTimeout(ctx, manifestTimeout)
		defer cancel()
		resp, err := rt.client.do(hctx, http.MethodHead, up, path, "")
		if err != nil {
			return failure(err, storage.ErrBlobUnknown)
		}
		_ = resp.Body.Close()
		return f.link(ctx, repo, d, size)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := rt.client.do(ctx, http.MethodGet, up, path, "")
	if err != nil {
		return failure(err, storage.ErrBlobUnknown)
	}
	defer resp.Body.Close()
	w, err := f.blobs.Writer(ctx, "pullthrough-"+randomID(), nil)
	if err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	body := newIdleReader(resp.Body, idleTimeout, cancel)
	buf := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(w, body, *buf)
	copyBufs.Put(buf)
	body.stop() // Commit may take long (replication) and must not be cancelled
	if err != nil {
		_ = w.Cancel(context.WithoutCancel(ctx))
		return unavailable(fmt.Errorf("upstream blob %s of %s after %d bytes: %w", d, up, n, err))
	}
	if err := w.Commit(ctx, d); err != nil {
		if errors.Is(err, storage.ErrDigestMismatch) { // the upload is gone
			// %v: the client did not send these bytes, so it is no 400.
			return unavailable(fmt.Errorf("upstream blob %s of %s: %v", d, up, err))
		}
		_ = w.Cancel(context.WithoutCancel(ctx))
		return fmt.Errorf("store blob %s: %w", d, err)
	}
	f.log.Debug("cached blob", "repository", repo, "digest", d, "size", n)
	return f.link(ctx, repo, d, n)
}

func (f *blobFetcher) link(ctx context.Context, repo string, d digest.Digest, size int64) error {
	if err := f.links.LinkBlob(ctx, repo, d, size); err != nil {
		return fmt.Errorf("link blob %s into %s: %w", d, repo, err)
	}
	return nil
}

// copyBufs are the buffers blob bodies stream through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// idleReader cancels a transfer that makes no progress for idle: the
// transport's timeouts end with the response header, and a stalled body
// would otherwise hold the fetch, and everyone waiting on it, forever.
type idleReader struct {
	r     io.Reader
	idle  time.Duration
	timer *time.Timer
}

func newIdleReader(r io.Reader, idle time.Duration, cancel func()) *idleReader {
	return &idleReader{r: r, idle: idle, timer: time.AfterFunc(idle, cancel)}
}

func (ir *idleReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	ir.timer.Reset(ir.idle)
	return n, err
}

func (ir *idleReader) stop() { ir.timer.Stop() }

// randomID names an upload in the blob store.
func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
