package node

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/oci"
	"github.com/atollhq/atoll/storage"
)

// Garbage collection runs online on every member, each over the blobs it
// holds: it marks every blob a manifest references and proposes the rest
// (those older than the grace period) to every member's fence, which
// refuses the blobs a push may still use (see package fence for the
// invariant and the protocol). Only blobs every member confirmed are
// deleted, so neither the grace period nor catching up with the others'
// metadata is what keeps a push safe: grace 0 is as safe as any.

// DefaultGCGrace is the grace period of online collections.
const DefaultGCGrace = time.Hour

// GCOptions tune one collection.
type GCOptions struct {
	// DryRun reports what would be freed without freeing it.
	DryRun bool `json:"dryRun"`
	// Grace spares blobs younger than this; zero spares none (offline
	// collection). Online collections default to DefaultGCGrace.
	Grace time.Duration `json:"grace"`
}

// GCReport is what one member's collection found.
type GCReport struct {
	Member    string        `json:"member"`
	DryRun    bool          `json:"dryRun"`
	Tags      int           `json:"tagsPruned"`      // tags deleted by retention policies
	Manifests int           `json:"manifestsPruned"` // untagged manifests deleted by them
	Marked    int           `json:"marked"`          // blobs referenced by manifests
	Held      int           `json:"held"`            // blobs held on this member
	Freed     int           `json:"freed"`           // blobs deleted (or that would be)
	Bytes     int64         `json:"bytes"`           // their size
	Young     int           `json:"young"`           // unreferenced but within the grace period
	Spared    int           `json:"spared"`          // unreferenced but in use by a push, or unconfirmed by a member
	Duration  time.Duration `json:"duration"`        // how long it took
	Error     string        `json:"error,omitempty"`
}

// CollectGarbage runs one collection over the blobs this member holds.
func (n *Node) CollectGarbage(ctx context.Context, opts GCOptions) (GCReport, error) {
	start := time.Now()
	rep := GCReport{Member: n.name, DryRun: opts.DryRun}
	if err := n.catchUp(ctx); err != nil {
		// Only fewer blobs are proposed for collection if it succeeds:
		// every member checks its own manifests before agreeing.
		n.log.Info("gc: metadata not caught up with every member", "err", err)
	}
	if len(n.retention) > 0 {
		p, err := n.applyRetention(ctx, opts.DryRun)
		rep.Tags, rep.Manifests = p.tags, p.manifests
		if err != nil {
			return rep, fmt.Errorf("gc: %w", err)
		}
	}
	marked := n.mark()
	rep.Marked = len(marked)
	var candidates []heldBlob
	cutoff := time.Now().Add(-opts.Grace)
	err := n.local.Walk(ctx, func(d digest.Digest, size int64) error {
		rep.Held++
		if marked[d] {
			return nil
		}
		if young, err := n.youngerThan(ctx, d, cutoff); err != nil || young {
			if err == nil {
				rep.Young++
			}
			return nil // gone meanwhile, or young
		}
		candidates = append(candidates, heldBlob{d, size})
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	c := collection{n: n, epoch: n.name + "." + rand.Text(), dryRun: opts.DryRun}
	if len(candidates) > 0 {
		defer c.end(ctx)
	}
	last := time.Now()
	for i := 0; i < len(candidates); i += gcBatch {
		batch := candidates[i:min(i+gcBatch, len(candidates))]
		freed, err := c.collect(ctx, batch)
		if err != nil {
			return rep, fmt.Errorf("gc: %w", err)
		}
		for _, b := range freed {
			rep.Freed++
			rep.Bytes += b.size
		}
		rep.Spared += len(batch) - len(freed)
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			n.log.Info("collecting garbage", "checked", i+len(batch), "of", len(candidates), "freed", rep.Freed)
		}
	}
	rep.Duration = time.Since(start)
	if !opts.DryRun {
		n.metrics.gcFreed.Add(float64(rep.Freed))
	}
	n.log.Info("garbage collected", "dryRun", opts.DryRun, "held", rep.Held, "marked", rep.Marked,
		"freed", rep.Freed, "bytes", rep.Bytes, "young", rep.Young, "spared", rep.Spared,
		"took", rep.Duration.Round(time.Millisecond))
	return rep, nil
}

// catchUp pulls from every live peer what it had applied when asked and
// this member lacks.
func (n *Node) catchUp(ctx context.Context) error {
	return n.metasync.CatchUp(ctx)
}

// mark returns the blobs a linked manifest references.
func (n *Node) mark() map[digest.Digest]bool {
	marked := map[digest.Digest]bool{}
	n.meta.EachManifest(func(_ string, m *storage.Manifest) bool {
		parsed, err := oci.Parse(m.Descriptor.MediaType, m.Content)
		if err != nil {
			return true // stored manifests were valid when pushed
		}
		for _, b := range parsed.Blobs() {
			marked[b.Digest] = true
		}
		return true
	})
	return marked
}

func (n *Node) youngerThan(ctx context.Context, d digest.Digest, cutoff time.Time) (bool, error) {
	b, err := n.local.Open(ctx, d)
	if err != nil {
		return false, err
	}
	defer b.Close()
	return b.ModTime().After(cutoff), nil
}

// sweep unlinks blobs ds from every repository and deletes this member's
// copies; it returns those deleted.
func (n *Node) sweep(ctx context.Context, ds []digest.Digest) (deleted []digest.Digest, err error) {
	// Links first: a crash between the two leaves unlinked bytes, which
	// the next collection frees, never a link to nothing.
	if err := n.meta.UnlinkEverywhere(ctx, ds); err != nil {
		return nil, err
	}
	var errs []error
	for _, d := range ds {
		if err := n.local.Delete(ctx, d); err != nil && !errors.Is(err, storage.ErrBlobUnknown) {
			errs = append(errs, err)
			continue
		}
		if n.cache != nil {
			n.cache.Forget(d)
		}
		deleted = append(deleted, d)
	}
	return deleted, errors.Join(errs...)
}

// serveGC answers POST /_atoll/v1/gc?dry-run=&grace=&scope=: a collection
// on every live member (scope=local: this one only), streamed as one JSON
// report per line as each member finishes.
func (n *Node) serveGC(w http.ResponseWriter, r *http.Request) {
	if !n.trusted(r) {
		http.Error(w, "cluster token required", http.StatusUnauthorized)
		return
	}
	q := r.URL.Query()
	opts := GCOptions{DryRun: q.Get("dry-run") == "true" || q.Get("dry-run") == "1", Grace: DefaultGCGrace}
	if g := q.Get("grace"); g != "" {
		d, err := time.ParseDuration(g)
		if err != nil || d < 0 {
			http.Error(w, "bad grace duration", http.StatusBadRequest)
			return
		}
		opts.Grace = d
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	reports := make(chan GCReport)
	members := []string{n.name}
	if n.cluster != nil && q.Get("scope") != "local" {
		members = append(members, n.views.load().peers()...)
	}
	for _, m := range members {
		go func() { reports <- n.collectOn(r.Context(), m, r.URL.RawQuery, opts) }()
	}
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	for range members {
		_ = enc.Encode(<-reports)
		if flusher != nil {
			flusher.Flush()
		}
	}
}

// collectOn runs a collection on member m, here or over HTTP.
func (n *Node) collectOn(ctx context.Context, m, query string, opts GCOptions) GCReport {
	if m == n.name {
		rep, err := n.CollectGarbage(ctx, opts)
		if err != nil {
			rep.Error = err.Error()
		}
		return rep
	}
	rep := GCReport{Member: m, DryRun: opts.DryRun}
	q, _ := url.ParseQuery(query)
	q.Set("scope", "local")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.scheme+"://"+n.views.load().members[m].HTTP+"/_atoll/v1/gc?"+q.Encode(), nil)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	req.Header.Set(tokenHeader, n.token)
	resp, err := n.client.Do(req)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		rep.Error = fmt.Sprintf("%s: %v", resp.Status, err)
	}
	return rep
}

// gcLoop collects garbage every GCInterval.
func (n *Node) gcLoop(ctx context.Context) {
	every(ctx, n.cfg.GCInterval, false, func(ctx context.Context) {
		if _, err := n.CollectGarbage(ctx, GCOptions{Grace: n.cfg.GCGrace}); err != nil && ctx.Err() == nil {
			n.log.Warn("scheduled garbage collection", "err", err)
		}
	})
}
