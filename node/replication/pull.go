package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/oci"
	"github.com/atollhq/atoll/storage"
)

// puller copies remote repositories here for the pull rules. Its methods
// may be called concurrently (one runPull per rule).
type puller struct {
	blobs pullBlobs
	meta  pullMeta
	owns  func(key string) bool
	m     *metrics
	log   *slog.Logger
	fails *failures
}

// pullBlobs is where pulled blobs go.
type pullBlobs interface {
	Stat(ctx context.Context, d digest.Digest) (int64, error)
	Writer(ctx context.Context, id string, state []byte) (storage.BlobWriter, error)
}

// pullMeta is what a pull reads and writes of the metadata.
type pullMeta interface {
	Tag(repo, tag string) (digest.Digest, error)
	Manifest(repo string, d digest.Digest) (*storage.Manifest, error)
	PutManifest(ctx context.Context, repo string, m *storage.Manifest, tag string) error
	BlobLinked(repo string, d digest.Digest) bool
	LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error
}

// runPull copies rl's remote repositories here every Interval until ctx is
// done.
func (pl *puller) runPull(ctx context.Context, rl *rule) {
	c := &client{rule: rl}
	every(ctx, rl.Interval, func(ctx context.Context) {
		if err := pl.pullPass(ctx, c); err != nil && ctx.Err() == nil {
			pl.fails.record(rl.Name, err)
			pl.log.Warn("replication pull", "rule", rl.Name, "err", err)
		}
	})
}

// pullProgress counts one pass's work for the logs.
type pullProgress struct {
	repos, tags, manifests, blobs int
	bytes                         int64
}

// pullPass copies every matching remote repository this member owns.
func (pl *puller) pullPass(ctx context.Context, c *client) error {
	rl := c.rule
	opts, err := c.options(ctx)
	if err != nil {
		return err
	}
	reg, err := c.registry()
	if err != nil {
		return err
	}
	all, err := remote.Catalog(ctx, reg, opts...)
	if err != nil {
		return fmt.Errorf("catalog of %s: %w", rl.Remote.URL, err)
	}
	var mine []string
	for _, repo := range all {
		if rl.matches(repo) && oci.ValidName(repo) && pl.owns(rl.Name+"/"+repo) {
			mine = append(mine, repo)
		}
	}
	pl.m.repos.WithLabelValues(rl.Name).Set(float64(len(mine)))
	pl.m.reposDone.WithLabelValues(rl.Name).Set(0)
	start, last := time.Now(), time.Now()
	var p pullProgress
	var errs []error
	for i, repo := range mine {
		if err := pl.pullRepo(ctx, c, repo, &p); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, fmt.Errorf("%s: %w", repo, err))
		}
		p.repos++
		pl.m.reposDone.WithLabelValues(rl.Name).Set(float64(i + 1))
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			pl.log.Info("replication pull in progress", "rule", rl.Name, "repositories", p.repos, "of", len(mine),
				"tags", p.tags, "manifests", p.manifests, "blobs", p.blobs, "bytes", p.bytes)
		}
	}
	if p.manifests+p.blobs > 0 || len(errs) > 0 {
		pl.log.Info("replication pull pass", "rule", rl.Name, "repositories", len(mine), "tags", p.tags,
			"manifests", p.manifests, "blobs", p.blobs, "bytes", p.bytes, "failed", len(errs),
			"took", time.Since(start).Round(time.Millisecond))
	}
	if len(errs) == 0 {
		pl.m.lastPass.WithLabelValues(rl.Name).SetToCurrentTime()
	}
	return errors.Join(errs...)
}

// pullRepo copies every tag of remote repository repoName here.
func (pl *puller) pullRepo(ctx context.Context, c *client, repoName string, p *pullProgress) error {
	opts, err := c.options(ctx)
	if err != nil {
		return err
	}
	repo, err := c.repo(repoName)
	if err != nil {
		return err
	}
	tags, err := remote.List(repo, opts...)
	if err != nil {
		return fmt.Errorf("tags: %w", err)
	}
	var errs []error
	for _, tag := range tags {
		if !oci.ValidTag(tag) {
			continue
		}
		if err := pl.pullRef(ctx, c, repo, repo.Tag(tag), tag, p); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, fmt.Errorf("tag %s: %w", tag, err))
			continue
		}
		p.tags++
	}
	return errors.Join(errs...)
}

// pullRef copies manifest ref of repo here with everything it references
// and its referrers, tagged tag when not empty. A tag already pointing at
// the remote's digest costs one HEAD.
func (pl *puller) pullRef(ctx context.Context, c *client, repo name.Repository, ref name.Reference, tag string, p *pullProgress) error {
	opts, err := c.options(ctx)
	if err != nil {
		return err
	}
	local := repo.RepositoryStr()
	if tag != "" {
		h, err := remote.Head(ref, opts...)
		if err != nil {
			return err
		}
		if d, err := pl.meta.Tag(local, tag); err == nil && d.String() == h.Digest.String() {
			return nil
		}
		ref = repo.Digest(h.Digest.String()) // the tag may move meanwhile
	}
	d, err := digest.Parse(ref.Identifier())
	if err != nil {
		return err
	}
	if m, err := pl.meta.Manifest(local, d); err == nil {
		// Complete already: stored after everything it references.
		if tag != "" {
			return pl.meta.PutManifest(ctx, local, m, tag)
		}
		return nil
	}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return err
	}
	if desc.Digest.String() != d.String() {
		return fmt.Errorf("manifest %s: the remote sent %s", d, desc.Digest)
	}
	parsed, err := oci.Parse(string(desc.MediaType), desc.Manifest)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d, err)
	}
	for _, child := range parsed.Manifests {
		if err := pl.pullRef(ctx, c, repo, repo.Digest(child.Digest.String()), "", p); err != nil {
			return fmt.Errorf("manifest %s of index %s: %w", child.Digest, d, err)
		}
	}
	for _, b := range parsed.Blobs() {
		if err := pl.pullBlob(ctx, c, repo, b.Digest, p); err != nil {
			return err
		}
	}
	m := &storage.Manifest{Descriptor: parsed.Descriptor(d, int64(len(desc.Manifest))), Content: desc.Manifest}
	if parsed.Subject != nil {
		m.Subject = parsed.Subject.Digest
	}
	if err := pl.meta.PutManifest(ctx, local, m, tag); err != nil {
		return fmt.Errorf("store manifest %s: %w", d, err)
	}
	p.manifests++
	pl.m.manifests.WithLabelValues(c.rule.Name, Pull).Inc()
	pl.pullReferrers(ctx, c, repo, d, p)
	return nil
}

// pullReferrers copies the referrers of manifest d. A remote without the
// referrers API answers through go-containerregistry's tag fallback (a tag
// the catalog pass copies anyway); errors are only logged.
func (pl *puller) pullReferrers(ctx context.Context, c *client, repo name.Repository, d digest.Digest, p *pullProgress) {
	opts, err := c.options(ctx)
	if err != nil {
		return
	}
	idx, err := remote.Referrers(repo.Digest(d.String()), opts...)
	if err != nil {
		if s := remoteStatus(err); s != http.StatusNotFound {
			pl.log.Debug("replication referrers", "rule", c.rule.Name, "manifest", d, "err", err)
		}
		return
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return
	}
	for _, ref := range im.Manifests {
		if err := pl.pullRef(ctx, c, repo, repo.Digest(ref.Digest.String()), "", p); err != nil {
			pl.log.Warn("replication referrer", "rule", c.rule.Name, "subject", d, "referrer", ref.Digest, "err", err)
		}
	}
}

// pullBlob stores remote blob d here and links it into the repository,
// unless it is linked already.
func (pl *puller) pullBlob(ctx context.Context, c *client, repo name.Repository, d digest.Digest, p *pullProgress) error {
	local := repo.RepositoryStr()
	if pl.meta.BlobLinked(local, d) {
		return nil
	}
	size, err := pl.blobs.Stat(ctx, d)
	if err != nil {
		if size, err = pl.fetchBlob(ctx, c, repo, d, p); err != nil {
			return err
		}
	}
	if err := pl.meta.LinkBlob(ctx, local, d, size); err != nil {
		return fmt.Errorf("link blob %s: %w", d, err)
	}
	return nil
}

// fetchBlob stores remote blob d here and returns its size.
func (pl *puller) fetchBlob(ctx context.Context, c *client, repo name.Repository, d digest.Digest, p *pullProgress) (int64, error) {
	opts, err := c.options(ctx)
	if err != nil {
		return 0, err
	}
	l, err := remote.Layer(repo.Digest(d.String()), opts...)
	if err != nil {
		return 0, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", d, err)
	}
	defer rc.Close()
	w, err := pl.blobs.Writer(ctx, "replication-"+randomID(), nil)
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", d, err)
	}
	n, err := io.Copy(w, rc)
	if err != nil {
		_ = w.Cancel(context.WithoutCancel(ctx))
		return 0, fmt.Errorf("blob %s after %d bytes: %w", d, n, err)
	}
	if err := w.Commit(ctx, d); err != nil {
		_ = w.Cancel(context.WithoutCancel(ctx))
		return 0, fmt.Errorf("store blob %s: %w", d, err)
	}
	p.blobs++
	p.bytes += n
	pl.m.blobs.WithLabelValues(c.rule.Name, Pull).Inc()
	pl.m.bytes.WithLabelValues(c.rule.Name, Pull).Add(float64(n))
	return n, nil
}
