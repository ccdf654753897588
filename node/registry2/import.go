package registry2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// Blobs is atoll's blob store as the import uses it. It may have the
// capability that adopts the source's blobs (LinkAdopter, ObjectAdopter).
type Blobs interface {
	Stat(ctx context.Context, d digest.Digest) (int64, error)
	Writer(ctx context.Context, id string, state []byte) (storage.BlobWriter, error)
}

// Metadata is atoll's metadata store as the import uses it. In a cluster it
// is the member's replicated store.
type Metadata interface {
	PutManifest(ctx context.Context, repo string, m *storage.Manifest, tag string) error
	LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error
}

// Deps are what an import writes to.
type Deps struct {
	Blobs  Blobs
	Meta   Metadata
	Logger *slog.Logger // progress and warnings; optional
}

// Options tune an import.
type Options struct {
	// DryRun reports what would be imported and writes nothing.
	DryRun bool
	// NoVerify adopts blobs without hashing them first; they are hashed
	// afterwards by Verify, from the list saved in Unverified. Default
	// false: each blob's digest is checked as it goes, and a blob that
	// fails is left out. Manifests are checked either way.
	NoVerify bool
	// Unverified is where a NoVerify import saves the list of the blobs
	// it adopted without hashing them, for Verify. Default nil: no list,
	// the blobs are trusted as registry:2 checked them when pushed.
	Unverified Record
	// Record keeps the record of a finished import; an import it records
	// for the same source does nothing. Default nil (no record).
	Record Record
	// ProgressEvery is how often progress is logged. Default 5s.
	ProgressEvery time.Duration
	// Workers hash and adopt blobs in parallel. Default: the CPUs, at
	// most 4; 8 for a bucket (server-side copies wait on the network).
	Workers int
}

// Report is what an import did (or, in a dry run, would do).
type Report struct {
	Source       string        `json:"source"`
	DryRun       bool          `json:"dryRun"`
	AlreadyDone  bool          `json:"alreadyDone,omitempty"`
	Blobs        int           `json:"blobs"`        // blobs in the source
	Bytes        int64         `json:"bytes"`        // their size
	Held         int           `json:"held"`         // already in atoll's store (an earlier, interrupted run)
	Linked       int           `json:"linked"`       // adopted by hard link, no byte copied
	ServerCopied int           `json:"serverCopied"` // adopted by a server-side copy in the bucket
	Copied       int           `json:"copied"`       // copied through atoll (another filesystem or store)
	CopiedBytes  int64         `json:"copiedBytes"`  // bytes written by those copies
	Corrupt      int           `json:"corrupt"`      // content not matching its digest: left out
	Unverified   int           `json:"unverified"`   // adopted without hashing, to be verified afterwards
	Repositories int           `json:"repositories"` // repositories imported
	Manifests    int           `json:"manifests"`    // manifest revisions imported
	Deleted      int           `json:"deleted"`      // revisions registry:2 had deleted: not imported
	Unsupported  int           `json:"unsupported"`  // manifests atoll does not serve (schema 1): left out
	Tags         int           `json:"tags"`         // tags imported
	DeadTags     int           `json:"deadTags"`     // tags of deleted or missing manifests: left out
	Layers       int           `json:"layers"`       // layer links imported
	Uploads      int           `json:"uploads"`      // uploads in progress: dropped
	Duration     time.Duration `json:"duration"`
}

// Run imports the registry:2 tree of src (see the package comment).
func Run(ctx context.Context, src Source, deps Deps, opts Options) (Report, error) {
	start := time.Now()
	rep := Report{Source: src.String(), DryRun: opts.DryRun}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	_, bucket := src.(bucketSource)
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 5 * time.Second
	}
	if opts.Workers <= 0 {
		opts.Workers = min(runtime.NumCPU(), 4)
		if bucket {
			opts.Workers = 8
		}
	}
	if !Detect(ctx, src) {
		return rep, fmt.Errorf("import %s: no registry:2 layout (%s/{blobs,repositories})", src, v2Root)
	}
	if done, err := Done(ctx, opts.Record, src); err != nil || done {
		rep.AlreadyDone = done
		return rep, err
	}
	im := &importer{src: src, bucket: bucket, deps: deps, opts: opts, log: log, rep: &rep}
	if err := im.blobs(ctx); err != nil {
		return rep, err
	}
	if err := im.repositories(ctx); err != nil {
		return rep, err
	}
	rep.Duration = time.Since(start)
	if opts.DryRun {
		return rep, nil
	}
	if err := im.saveUnverified(ctx); err != nil {
		return rep, err
	}
	return rep, markDone(ctx, opts.Record, rep)
}

type importer struct {
	src        Source
	bucket     bool // src is a bucket: adoption is a server-side copy
	deps       Deps
	opts       Options
	log        *slog.Logger
	rep        *Report
	mu         sync.Mutex      // guards rep and unverified during the blob phase
	unverified []digest.Digest // held without having been hashed (NoVerify)
}

// blobs adopts every blob of the source, opts.Workers at a time, logging
// progress.
func (im *importer) blobs(ctx context.Context) error {
	all, err := listBlobs(ctx, im.src)
	if err != nil {
		return fmt.Errorf("import: listing blobs: %w", err)
	}
	im.rep.Blobs = len(all)
	for _, b := range all {
		im.rep.Bytes += b.size
	}
	im.log.Info("importing registry:2 blobs", "source", im.src.String(), "blobs", len(all), "bytes", im.rep.Bytes,
		"verify", !im.opts.NoVerify, "dryRun", im.opts.DryRun)
	p := newProgress(len(all), im.rep.Bytes)
	stop := p.logEvery(im.log, im.opts.ProgressEvery, "importing registry:2 blobs")
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan sourceBlob)
	errs := make(chan error, im.opts.Workers)
	var wg sync.WaitGroup
	for range im.opts.Workers {
		wg.Go(func() {
			for b := range work {
				if err := im.blob(ctx, b); err != nil {
					errs <- err
					cancel()
					return
				}
				p.add(b.size)
			}
		})
	}
feed:
	for _, b := range all {
		select {
		case work <- b:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	p.log(im.log, "blobs done")
	return nil
}

// blob adopts one blob: skipped when held, verified unless NoVerify, then
// adopted (hard link, server-side copy), or copied when it cannot be.
func (im *importer) blob(ctx context.Context, b sourceBlob) error {
	if _, err := im.deps.Blobs.Stat(ctx, b.digest); err == nil {
		im.count(func(r *Report) { r.Held++ })
		im.unhashed(b.digest)
		return nil
	}
	if !im.opts.NoVerify {
		ok, err := verify(ctx, im.src, b)
		if err != nil {
			return fmt.Errorf("import: blob %s: %w", b.digest, err)
		}
		if !ok {
			im.log.Warn("import: blob content does not match its digest: left out", "digest", b.digest, "path", b.path)
			im.count(func(r *Report) { r.Corrupt++ })
			return nil
		}
	}
	adopted := func(r *Report) {
		if im.bucket {
			r.ServerCopied++
		} else {
			r.Linked++
		}
	}
	if im.opts.DryRun {
		im.count(adopted)
		return nil
	}
	err := im.src.adopt(ctx, im.deps.Blobs, b.digest, b.path, b.size)
	if err == nil {
		im.count(adopted)
		im.unhashed(b.digest)
		return nil
	}
	if !errors.Is(err, errNoAdopt) {
		return fmt.Errorf("import: blob %s: %w", b.digest, err)
	}
	im.log.Debug("import: cannot adopt, copying", "digest", b.digest, "err", err)
	if err := im.copy(ctx, b); err != nil {
		return fmt.Errorf("import: blob %s: %w", b.digest, err)
	}
	im.count(func(r *Report) { r.Copied++; r.CopiedBytes += b.size })
	return nil
}

func (im *importer) count(f func(*Report)) {
	im.mu.Lock()
	defer im.mu.Unlock()
	f(im.rep)
}

// unhashed notes a blob held without having been hashed here, with
// NoVerify (one held already may come from an earlier NoVerify run).
func (im *importer) unhashed(d digest.Digest) {
	if !im.opts.NoVerify || im.opts.DryRun {
		return
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	im.unverified = append(im.unverified, d)
	im.rep.Unverified++
}

// saveUnverified saves the list for Verify.
func (im *importer) saveUnverified(ctx context.Context) error {
	if im.opts.Unverified == nil || len(im.unverified) == 0 {
		return nil
	}
	slices.Sort(im.unverified)
	if err := saveVerifyState(ctx, im.opts.Unverified, verifyState{Source: im.src.String(), Blobs: im.unverified}); err != nil {
		return fmt.Errorf("import: saving the blobs to verify: %w", err)
	}
	return nil
}

// verify hashes the blob's content in the source.
func verify(ctx context.Context, src Source, b sourceBlob) (bool, error) {
	r, err := src.Open(ctx, b.path)
	if err != nil {
		return false, err
	}
	defer r.Close()
	v := b.digest.Verifier()
	if _, err := io.Copy(v, r); err != nil {
		return false, err
	}
	return v.Verified(), nil
}

// copy writes the blob through the store's writer, which checks its digest.
func (im *importer) copy(ctx context.Context, b sourceBlob) error {
	r, err := im.src.Open(ctx, b.path)
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := im.deps.Blobs.Writer(ctx, "import-"+b.digest.Encoded(), nil)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		_ = w.Cancel(ctx)
		return err
	}
	return w.Commit(ctx, b.digest)
}
