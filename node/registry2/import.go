package registry2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/api/oci"
	"github.com/atollhq/atoll/storage"
)

// Blobs is atoll's blob store as the import uses it.
type Blobs interface {
	Stat(ctx context.Context, d digest.Digest) (int64, error)
	Writer(ctx context.Context, id string, state []byte) (storage.BlobWriter, error)
}

// Adopter is an optional Blobs capability: taking the file at path as blob
// d by hard link, without copying it (filesystem.Store). An error (another
// filesystem, say) makes the import copy the blob instead.
type Adopter interface {
	Adopt(d digest.Digest, path string) error
}

// Metadata is atoll's metadata store as the import uses it. In a cluster it
// is the member's replicated store.
type Metadata interface {
	PutManifest(ctx context.Context, repo string, m *storage.Manifest, tag string) error
	LinkBlob(ctx context.Context, repo string, d digest.Digest) error
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
	// NoVerify adopts blobs without hashing them first (registry:2
	// verified them when they were pushed). Default false: each blob's
	// digest is checked as it goes, and a blob that fails is left out.
	NoVerify bool
	// Marker is the file recording a finished import of a source; an
	// import whose marker names the same source does nothing. Default ""
	// (no record).
	Marker string
	// ProgressEvery is how often progress is logged. Default 5s.
	ProgressEvery time.Duration
	// Workers hash and adopt blobs in parallel. Default: the CPUs, at most 4.
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
	Copied       int           `json:"copied"`       // copied (another filesystem)
	CopiedBytes  int64         `json:"copiedBytes"`  // bytes written by copies
	Corrupt      int           `json:"corrupt"`      // content not matching its digest: left out
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

// Run imports the registry:2 tree under dir (see the package comment).
func Run(ctx context.Context, dir string, deps Deps, opts Options) (Report, error) {
	start := time.Now()
	rep := Report{Source: dir, DryRun: opts.DryRun}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 5 * time.Second
	}
	if opts.Workers <= 0 {
		opts.Workers = min(runtime.NumCPU(), 4)
	}
	if !Detect(dir) {
		return rep, fmt.Errorf("import %s: no registry:2 layout (%s/{blobs,repositories})", dir, v2Root)
	}
	if Done(opts.Marker, dir) {
		rep.AlreadyDone = true
		return rep, nil
	}
	l := newLayout(dir)
	im := &importer{l: l, deps: deps, opts: opts, log: log, rep: &rep}
	if err := im.blobs(ctx); err != nil {
		return rep, err
	}
	if err := im.repositories(ctx); err != nil {
		return rep, err
	}
	rep.Duration = time.Since(start)
	if !opts.DryRun {
		if err := markDone(opts.Marker, rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

type importer struct {
	l    layout
	deps Deps
	opts Options
	log  *slog.Logger
	rep  *Report
	mu   sync.Mutex // guards rep during the blob phase
}

// blobs adopts every blob of the source, opts.Workers at a time, logging
// progress.
func (im *importer) blobs(ctx context.Context) error {
	all, err := im.l.blobs()
	if err != nil {
		return fmt.Errorf("import: listing blobs: %w", err)
	}
	im.rep.Blobs = len(all)
	for _, b := range all {
		im.rep.Bytes += b.size
	}
	im.log.Info("importing registry:2 blobs", "source", im.l.root, "blobs", len(all), "bytes", im.rep.Bytes,
		"verify", !im.opts.NoVerify, "dryRun", im.opts.DryRun)
	p := newProgress(len(all), im.rep.Bytes)
	stop := p.logEvery(im.log, im.opts.ProgressEvery)
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
// hard-linked, or copied when it cannot be.
func (im *importer) blob(ctx context.Context, b sourceBlob) error {
	if _, err := im.deps.Blobs.Stat(ctx, b.digest); err == nil {
		im.count(func(r *Report) { r.Held++ })
		return nil
	}
	if !im.opts.NoVerify {
		ok, err := verify(b)
		if err != nil {
			return fmt.Errorf("import: blob %s: %w", b.digest, err)
		}
		if !ok {
			im.log.Warn("import: blob content does not match its digest: left out", "digest", b.digest, "path", b.path)
			im.count(func(r *Report) { r.Corrupt++ })
			return nil
		}
	}
	if im.opts.DryRun {
		im.count(func(r *Report) { r.Linked++ })
		return nil
	}
	if a, ok := im.deps.Blobs.(Adopter); ok {
		err := a.Adopt(b.digest, b.path)
		if err == nil {
			im.count(func(r *Report) { r.Linked++ })
			return nil
		}
		im.log.Debug("import: cannot link, copying", "digest", b.digest, "err", err)
	}
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

// verify hashes the blob's content.
func verify(b sourceBlob) (bool, error) {
	f, err := os.Open(b.path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	v := b.digest.Verifier()
	if _, err := io.Copy(v, f); err != nil {
		return false, err
	}
	return v.Verified(), nil
}

// copy writes the blob through the store's writer, which checks its digest.
func (im *importer) copy(ctx context.Context, b sourceBlob) error {
	f, err := os.Open(b.path)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := im.deps.Blobs.Writer(ctx, "import-"+b.digest.Encoded(), nil)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, f); err != nil {
		_ = w.Cancel(ctx)
		return err
	}
	return w.Commit(ctx, b.digest)
}

// repositories imports each repository's manifests, tags and layer links.
func (im *importer) repositories(ctx context.Context) error {
	repos, err := im.l.repositories()
	if err != nil {
		return fmt.Errorf("import: listing repositories: %w", err)
	}
	last := time.Now()
	for i, repo := range repos {
		if err := im.repository(ctx, repo); err != nil {
			return fmt.Errorf("import: repository %s: %w", repo, err)
		}
		im.rep.Repositories++
		if time.Since(last) >= im.opts.ProgressEvery {
			last = time.Now()
			im.log.Info("importing registry:2 repositories", "done", i+1, "of", len(repos))
		}
	}
	im.log.Info("registry:2 repositories imported", "repositories", len(repos), "manifests", im.rep.Manifests,
		"tags", im.rep.Tags, "layers", im.rep.Layers, "deletedManifests", im.rep.Deleted)
	return nil
}

func (im *importer) repository(ctx context.Context, repo string) error {
	if !oci.ValidName(repo) {
		im.log.Warn("import: repository name atoll does not accept: left out", "repository", repo)
		return nil
	}
	if ups := im.l.uploads(repo); len(ups) > 0 {
		im.log.Warn("import: uploads in progress dropped (clients retry them)", "repository", repo, "uploads", len(ups))
		im.rep.Uploads += len(ups)
	}
	revs, deleted, err := im.l.revisions(repo)
	if err != nil {
		return err
	}
	im.rep.Deleted += deleted
	manifests := map[digest.Digest]*storage.Manifest{}
	for _, d := range revs {
		m, err := im.manifest(d)
		if err != nil {
			im.log.Warn("import: manifest left out", "repository", repo, "digest", d, "err", err)
			im.rep.Unsupported++
			continue
		}
		manifests[d] = m
	}
	// Children before the indexes that list them.
	order := slices.Collect(func(yield func(digest.Digest) bool) {
		for d := range manifests {
			if !yield(d) {
				return
			}
		}
	})
	slices.SortFunc(order, func(a, b digest.Digest) int {
		ia, ib := isIndex(manifests[a]), isIndex(manifests[b])
		switch {
		case ia == ib:
			return compareDigest(a, b)
		case ia:
			return 1
		}
		return -1
	})
	for _, d := range order {
		if err := im.put(ctx, repo, manifests[d], ""); err != nil {
			return err
		}
		im.rep.Manifests++
	}
	tags, err := im.l.tags(repo)
	if err != nil {
		return err
	}
	for tag, d := range tags {
		m, ok := manifests[d]
		if !ok || !oci.ValidTag(tag) {
			im.log.Info("import: tag of a deleted manifest stays deleted", "repository", repo, "tag", tag, "digest", d)
			im.rep.DeadTags++
			continue
		}
		if err := im.put(ctx, repo, m, tag); err != nil {
			return err
		}
		im.rep.Tags++
	}
	layers, err := im.l.layers(repo)
	if err != nil {
		return err
	}
	for _, d := range layers {
		if _, err := im.deps.Blobs.Stat(ctx, d); err != nil && !im.opts.DryRun {
			im.log.Warn("import: layer link to a blob registry:2 does not hold: left out", "repository", repo, "digest", d)
			continue
		}
		if !im.opts.DryRun {
			if err := im.deps.Meta.LinkBlob(ctx, repo, d); err != nil {
				return err
			}
		}
		im.rep.Layers++
	}
	return nil
}

func (im *importer) put(ctx context.Context, repo string, m *storage.Manifest, tag string) error {
	if im.opts.DryRun {
		return nil
	}
	return im.deps.Meta.PutManifest(ctx, repo, m, tag)
}

// manifest reads and parses revision d from the source's blobs.
func (im *importer) manifest(d digest.Digest) (*storage.Manifest, error) {
	content, err := os.ReadFile(im.l.blobPath(d))
	if err != nil {
		return nil, err
	}
	if d.Validate() != nil || d.Algorithm().FromBytes(content) != d {
		return nil, fmt.Errorf("content does not match digest %s", d)
	}
	parsed, err := oci.Parse(mediaType(content), content)
	if err != nil {
		return nil, err
	}
	m := &storage.Manifest{Descriptor: parsed.Descriptor(d, int64(len(content))), Content: content}
	if parsed.Subject != nil {
		m.Subject = parsed.Subject.Digest
	}
	return m, nil
}

// mediaType is the manifest's declared media type or, when it declares
// none (OCI allows that), the OCI type its shape says.
func mediaType(content []byte) string {
	var w struct {
		MediaType string            `json:"mediaType"`
		Manifests []json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(content, &w) != nil || w.MediaType != "" {
		return w.MediaType
	}
	if w.Manifests != nil {
		return v1.MediaTypeImageIndex
	}
	return v1.MediaTypeImageManifest
}

func isIndex(m *storage.Manifest) bool {
	switch m.Descriptor.MediaType {
	case v1.MediaTypeImageIndex, "application/vnd.docker.distribution.manifest.list.v2+json":
		return true
	}
	return false
}

func compareDigest(a, b digest.Digest) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// marker is the record of a finished import.
type marker struct {
	Source   string    `json:"source"`
	Finished time.Time `json:"finished"`
	Report   Report    `json:"report"`
}

// Done reports whether the marker at path records a finished import of source.
func Done(path, source string) bool {
	if path == "" {
		return false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var m marker
	if json.Unmarshal(b, &m) != nil {
		return false
	}
	abs, _ := filepath.Abs(source)
	return m.Source == abs
}

// markDone records the finished import durably (temporary file, fsync,
// rename).
func markDone(path string, rep Report) error {
	if path == "" {
		return nil
	}
	abs, _ := filepath.Abs(rep.Source)
	b, err := json.MarshalIndent(marker{Source: abs, Finished: time.Now().UTC(), Report: rep}, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("import: recording: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("import: recording: %w", err), os.Remove(tmp))
	}
	return nil
}
