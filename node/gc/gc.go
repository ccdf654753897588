// Package gc is garbage collection with retention, online, on one member:
// retention policies prune tags and untagged manifests, then the blobs
// this member holds that no manifest references are freed.
//
// A collection marks every blob a manifest references and proposes the
// rest (those older than the grace period) to every member's fence, in
// batches, which refuses the blobs a push may still use (package fence
// states the invariant and the protocol). Only blobs every member
// confirmed are deleted, so neither the grace period nor catching up with
// the other members' metadata is what keeps a push safe: grace 0 is as
// safe as any.
package gc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/node/gc/fence"
	"github.com/atollhq/atoll/oci"
	"github.com/atollhq/atoll/storage"
)

// DefaultGrace is the grace period of online collections.
const DefaultGrace = time.Hour

// Config tunes the collections of a member.
type Config struct {
	// Interval runs a collection on a schedule. Default 0: only on demand.
	Interval time.Duration `yaml:"interval"`
	// Grace is the grace period of scheduled collections. Default 1h.
	Grace time.Duration `yaml:"grace"`
	// Retention policies, applied before each collection. Default none.
	// In the config file they are the top-level retention: list.
	Retention []RetentionPolicy `yaml:"-"`
}

func (c *Config) applyDefaults() {
	if c.Grace <= 0 {
		c.Grace = DefaultGrace
	}
}

// Options tune one collection.
type Options struct {
	// DryRun reports what would be freed without freeing it.
	DryRun bool `json:"dryRun"`
	// Grace spares blobs younger than this; zero spares none. Online
	// collections default to DefaultGrace.
	Grace time.Duration `json:"grace"`
}

// Report is what one member's collection found.
type Report struct {
	Member    string        `json:"member"`
	DryRun    bool          `json:"dryRun"`
	Tags      int           `json:"tagsPruned"`      // tags deleted by retention policies
	Manifests int           `json:"manifestsPruned"` // untagged manifests deleted by them
	Records   int           `json:"recordsDropped"`  // manifest records no repository links
	Marked    int           `json:"marked"`          // blobs referenced by manifests
	Held      int           `json:"held"`            // blobs held on this member
	Freed     int           `json:"freed"`           // blobs deleted (or that would be)
	Bytes     int64         `json:"bytes"`           // their size
	Young     int           `json:"young"`           // unreferenced but within the grace period
	Spared    int           `json:"spared"`          // unreferenced but in use by a push, or unconfirmed by a member
	Duration  time.Duration `json:"duration"`        // how long it took
	Error     string        `json:"error,omitempty"`
}

// Blobs is the member's own blob store, as a collection uses it.
type Blobs interface {
	storage.BlobWalker
	Open(ctx context.Context, d digest.Digest) (storage.Blob, error)
	Delete(ctx context.Context, d digest.Digest) error
}

// Metadata is the member's metadata store, as a collection uses it.
type Metadata interface {
	Repositories(last string, n int) []string
	Tags(repo, last string, n int) ([]string, error)
	Tag(repo, tag string) (digest.Digest, error)
	Manifest(repo string, d digest.Digest) (*storage.Manifest, error)
	DeleteTag(ctx context.Context, repo, tag string) error
	DeleteManifest(ctx context.Context, repo string, d digest.Digest) error
	EachManifest(fn func(repo string, m *storage.Manifest) bool)
	Written(repo, tag string, d digest.Digest) (at time.Time, ok bool)
	UnlinkEverywhere(ctx context.Context, ds []digest.Digest) error
	// Stamp reads the metadata clock; Observe moves it past a stamp.
	Stamp() uint64
	Observe(stamp uint64)
}

// Members reaches the other members of a cluster.
type Members interface {
	// Names returns this member and every live peer, sorted.
	Names() []string
	// Ask runs a round of a collection on member m, another one.
	Ask(ctx context.Context, m string, r Round) (Reply, error)
	// CatchUp pulls what the live peers have applied and this member
	// lacks. A collection works without it, proposing more.
	CatchUp(ctx context.Context) error
}

// Deps are what a Collector works on.
type Deps struct {
	Self  string // this member's name
	Blobs Blobs
	Meta  Metadata
	Fence *fence.Fence
	// Members is nil on a member on its own.
	Members Members
	// Immutable reports whether a tag is immutable: retention keeps it.
	// Optional.
	Immutable func(repo, tag string) bool
	// Deleted is told each blob deleted here (a read cache forgets it).
	// Optional.
	Deleted func(d digest.Digest)
	// Freed counts the blobs freed. Optional.
	Freed func(n int)
	Log   *slog.Logger
}

// Collector runs collections on one member. Its methods may be called
// concurrently.
type Collector struct {
	cfg       Config
	deps      Deps
	retention retention
}

// New returns a collector.
func New(cfg Config, deps Deps) (*Collector, error) {
	cfg.applyDefaults()
	r, err := compileRetention(cfg.Retention)
	if err != nil {
		return nil, err
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Immutable == nil {
		deps.Immutable = func(string, string) bool { return false }
	}
	return &Collector{cfg: cfg, deps: deps, retention: r}, nil
}

// Collect runs one collection over the blobs this member holds.
func (c *Collector) Collect(ctx context.Context, opts Options) (Report, error) {
	start := time.Now()
	d := c.deps
	rep := Report{Member: d.Self, DryRun: opts.DryRun}
	var err error
	if d.Members != nil {
		if err := d.Members.CatchUp(ctx); err != nil {
			// Only fewer blobs are proposed for collection if it succeeds:
			// every member checks its own manifests before agreeing.
			d.Log.Info("gc: metadata not caught up with every member", "err", err)
		}
	}
	if len(c.retention) > 0 {
		p, err := c.applyRetention(ctx, opts.DryRun)
		rep.Tags, rep.Manifests = p.tags, p.manifests
		if err != nil {
			return rep, fmt.Errorf("gc: %w", err)
		}
	}
	if rep.Records, err = c.collectRecords(ctx, opts); err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	marked := c.mark()
	rep.Marked = len(marked)
	var candidates []held
	cutoff := time.Now().Add(-opts.Grace)
	err = d.Blobs.Walk(ctx, func(dg digest.Digest, size int64) error {
		rep.Held++
		if marked[dg] {
			return nil
		}
		if young, err := c.youngerThan(ctx, dg, cutoff); err != nil || young {
			if err == nil {
				rep.Young++
			}
			return nil // gone meanwhile, or young
		}
		candidates = append(candidates, held{dg, size})
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	col := collection{c: c, epoch: d.Self + "." + rand.Text(), dryRun: opts.DryRun}
	if len(candidates) > 0 {
		defer col.end(ctx)
	}
	last := time.Now()
	for i := 0; i < len(candidates); i += batchSize {
		batch := candidates[i:min(i+batchSize, len(candidates))]
		freed, err := col.collect(ctx, batch)
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
			d.Log.Info("collecting garbage", "checked", i+len(batch), "of", len(candidates), "freed", rep.Freed)
		}
	}
	rep.Duration = time.Since(start)
	if !opts.DryRun && d.Freed != nil {
		d.Freed(rep.Freed)
	}
	d.Log.Info("garbage collected", "dryRun", opts.DryRun, "held", rep.Held, "marked", rep.Marked,
		"freed", rep.Freed, "bytes", rep.Bytes, "records", rep.Records, "young", rep.Young, "spared", rep.Spared,
		"took", rep.Duration.Round(time.Millisecond))
	return rep, nil
}

// Run collects on the configured schedule until ctx ends.
func (c *Collector) Run(ctx context.Context) {
	if c.cfg.Interval <= 0 {
		return
	}
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := c.Collect(ctx, Options{Grace: c.cfg.Grace}); err != nil && ctx.Err() == nil {
				c.deps.Log.Warn("scheduled garbage collection", "err", err)
			}
		}
	}
}

// held is a blob this member holds.
type held struct {
	d    digest.Digest
	size int64
}

// mark returns the blobs a linked manifest references.
func (c *Collector) mark() map[digest.Digest]bool {
	marked := map[digest.Digest]bool{}
	c.deps.Meta.EachManifest(func(_ string, m *storage.Manifest) bool {
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

func (c *Collector) youngerThan(ctx context.Context, d digest.Digest, cutoff time.Time) (bool, error) {
	b, err := c.deps.Blobs.Open(ctx, d)
	if err != nil {
		return false, err
	}
	defer b.Close()
	return b.ModTime().After(cutoff), nil
}

// sweep unlinks blobs ds from every repository and deletes this member's
// copies; it returns those deleted.
func (c *Collector) sweep(ctx context.Context, ds []digest.Digest) (deleted []digest.Digest, err error) {
	// Links first: a crash between the two leaves unlinked bytes, which
	// the next collection frees, never a link to nothing.
	if err := c.deps.Meta.UnlinkEverywhere(ctx, ds); err != nil {
		return nil, err
	}
	var errs []error
	for _, d := range ds {
		if err := c.deps.Blobs.Delete(ctx, d); err != nil && !errors.Is(err, storage.ErrBlobUnknown) {
			errs = append(errs, err)
			continue
		}
		if c.deps.Deleted != nil {
			c.deps.Deleted(d)
		}
		deleted = append(deleted, d)
	}
	return deleted, errors.Join(errs...)
}
