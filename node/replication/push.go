package replication

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/node/queue"
	"github.com/atollhq/atoll/storage"
)

// pusher sends local changes to the remotes of the push rules: the queued
// events, and what the periodic check finds missing. Its methods may be
// called concurrently (one runPush per rule).
type pusher struct {
	q     *queue.Queue
	wake  map[string]chan struct{} // per rule: an event was queued
	meta  pushMeta
	open  func(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error)
	owns  func(key string) bool
	m     *metrics
	log   *slog.Logger
	fails *failures
}

// pushMeta is what a push reads of the metadata.
type pushMeta interface {
	Repositories(last string, n int) []string
	Tags(repo, last string, n int) ([]string, error)
	Tag(repo, tag string) (digest.Digest, error)
	Manifest(repo string, d digest.Digest) (*storage.Manifest, error)
	Referrers(repo string, d digest.Digest) []ocispec.Descriptor
}

// runPush sends rl's queue to its remote, and checks the remote against the
// local tags every Interval, until ctx is done.
func (ps *pusher) runPush(ctx context.Context, rl *rule) {
	c := &client{rule: rl}
	log := ps.log.With("rule", rl.Name)
	d := &queue.Drainer{
		Queue: ps.q, Stream: rl.Name, Wake: ps.wake[rl.Name], Batch: 16,
		Backoff: time.Second, MaxBackoff: time.Minute,
		Deliver: func(ctx context.Context, items []queue.Item) (int, error) {
			for i, it := range items {
				if err := ps.deliver(ctx, c, it.Value); err != nil {
					return i, err
				}
				ps.m.queued.WithLabelValues(rl.Name).Dec()
			}
			return len(items), nil
		},
		Failed: func(failures int, err error) {
			ps.fails.record(rl.Name, err)
			if failures == 1 || failures%10 == 0 {
				log.Warn("replication push failing; retrying", "failures", failures, "err", err)
			}
		},
		Recovered: func(failures int) { log.Info("replication push recovered", "failures", failures) },
	}
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(ctx) })
	wg.Go(func() {
		every(ctx, rl.Interval, func(ctx context.Context) {
			if err := ps.reconcile(ctx, c); err != nil && ctx.Err() == nil {
				ps.fails.record(rl.Name, err)
				log.Warn("replication push check", "err", err)
			}
		})
	})
	wg.Wait()
}

// deliver sends one queued event. An event the remote refuses for good
// (a 4xx: deletes disabled there, a tag delete it does not support) is
// logged and dropped; anything else is returned to be retried.
func (ps *pusher) deliver(ctx context.Context, c *client, item []byte) error {
	var ev event
	if err := json.Unmarshal(item, &ev); err != nil {
		ps.log.Error("replication: undecodable queued event dropped", "err", err)
		return nil
	}
	var err error
	switch ev.Action {
	case api.ActionPush:
		err = ps.pushManifest(ctx, c, ev.Repo, ev.Digest, ev.Tag)
	case api.ActionDelete:
		err = ps.pushDelete(ctx, c, ev)
	}
	if err != nil && permanent(err) {
		ps.log.Warn("replication: the remote refused a change; dropped", "rule", c.rule.Name, "action", ev.Action,
			"repository", ev.Repo, "digest", ev.Digest, "tag", ev.Tag, "err", err)
		ps.fails.record(c.rule.Name, err)
		return nil
	}
	return err
}

// pushDelete deletes a tag, or a manifest by digest, on the remote. The
// event of a blob delete looks like a manifest delete by digest; the remote
// answers 404 for it, which is success: it has no such manifest.
func (ps *pusher) pushDelete(ctx context.Context, c *client, ev event) error {
	repo, err := c.repo(ev.Repo)
	if err != nil {
		return err
	}
	var ref name.Reference = repo.Tag(ev.Tag)
	if ev.Tag == "" {
		ref = repo.Digest(ev.Digest.String())
	}
	opts, err := c.options(ctx)
	if err != nil {
		return err
	}
	err = remote.Delete(ref, opts...)
	if remoteStatus(err) == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s on the remote: %w", ref, err)
	}
	ps.m.deletes.WithLabelValues(c.rule.Name).Inc()
	ps.log.Debug("replicated delete", "rule", c.rule.Name, "ref", ref.String())
	return nil
}

// pushManifest sends manifest d of repo, and everything it references, to
// the remote, tagged tag when not empty. A manifest deleted here since is
// skipped: its delete follows in the queue.
func (ps *pusher) pushManifest(ctx context.Context, c *client, repoName string, d digest.Digest, tag string) error {
	m, err := ps.meta.Manifest(repoName, d)
	if errors.Is(err, storage.ErrManifestUnknown) {
		return nil
	}
	if err != nil {
		return err
	}
	p, err := parse(m)
	if err != nil {
		return fmt.Errorf("manifest %s of %s: %w", d, repoName, err)
	}
	repo, err := c.repo(repoName)
	if err != nil {
		return err
	}
	opts, err := c.options(ctx)
	if err != nil {
		return err
	}
	for _, child := range p.Manifests {
		if _, err := remote.Head(repo.Digest(child.Digest.String()), opts...); err == nil {
			continue
		}
		if err := ps.pushManifest(ctx, c, repoName, child.Digest, ""); err != nil {
			return err
		}
	}
	for _, b := range p.Blobs() {
		l, err := partial.CompressedToLayer(&localLayer{ctx: ctx, open: ps.open, desc: b})
		if err != nil {
			return err
		}
		if err := remote.WriteLayer(repo, l, opts...); err != nil {
			return fmt.Errorf("blob %s of %s to the remote: %w", b.Digest, repoName, err)
		}
		ps.m.blobs.WithLabelValues(c.rule.Name, Push).Inc()
		ps.m.bytes.WithLabelValues(c.rule.Name, Push).Add(float64(b.Size))
	}
	var ref name.Reference = repo.Digest(d.String())
	if tag != "" {
		ref = repo.Tag(tag)
	}
	if err := remote.Put(ref, rawManifest{m}, opts...); err != nil {
		return fmt.Errorf("manifest %s to the remote: %w", ref, err)
	}
	ps.m.manifests.WithLabelValues(c.rule.Name, Push).Inc()
	ps.log.Debug("replicated manifest", "rule", c.rule.Name, "ref", ref.String(), "digest", d)
	return nil
}

// reconcile sends every tag of the matching local repositories this member
// owns, and their referrers, that the remote lacks or has elsewhere.
func (ps *pusher) reconcile(ctx context.Context, c *client) error {
	opts, err := c.options(ctx)
	if err != nil {
		return err
	}
	var errs []error
	sent := 0
	for _, repoName := range ps.meta.Repositories("", 0) {
		if !c.rule.matches(repoName) || !ps.owns(c.rule.Name+"/"+repoName) {
			continue
		}
		repo, err := c.repo(repoName)
		if err != nil {
			return err
		}
		tags, _ := ps.meta.Tags(repoName, "", 0)
		for _, tag := range tags {
			d, err := ps.meta.Tag(repoName, tag)
			if err != nil {
				continue
			}
			if h, err := remote.Head(repo.Tag(tag), opts...); err != nil || h.Digest.String() != d.String() {
				if err := ps.pushManifest(ctx, c, repoName, d, tag); err != nil {
					errs = append(errs, err)
					continue
				}
				sent++
			}
			for _, ref := range ps.meta.Referrers(repoName, d) {
				if _, err := remote.Head(repo.Digest(ref.Digest.String()), opts...); err == nil {
					continue
				}
				if err := ps.pushManifest(ctx, c, repoName, ref.Digest, ""); err != nil {
					errs = append(errs, err)
					continue
				}
				sent++
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if sent > 0 {
		ps.log.Info("replication push check sent what the remote lacked", "rule", c.rule.Name, "manifests", sent)
	}
	if len(errs) == 0 {
		ps.m.lastPass.WithLabelValues(c.rule.Name).SetToCurrentTime()
	}
	return errors.Join(errs...)
}

// localLayer is a blob of this registry as go-containerregistry's
// compressed layer, read wherever in the cluster it is.
type localLayer struct {
	ctx  context.Context
	open func(context.Context, digest.Digest) (io.ReadCloser, int64, error)
	desc ocispec.Descriptor
}

func (l *localLayer) Digest() (v1.Hash, error) { return v1.NewHash(l.desc.Digest.String()) }
func (l *localLayer) Size() (int64, error)     { return l.desc.Size, nil }
func (l *localLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.desc.MediaType), nil
}
func (l *localLayer) Compressed() (io.ReadCloser, error) {
	rc, _, err := l.open(l.ctx, l.desc.Digest)
	return rc, err
}

// rawManifest is a stored manifest as go-containerregistry's Taggable.
type rawManifest struct{ m *storage.Manifest }

func (t rawManifest) RawManifest() ([]byte, error) { return t.m.Content, nil }
func (t rawManifest) MediaType() (types.MediaType, error) {
	return types.MediaType(t.m.Descriptor.MediaType), nil
}

// every runs fn every interval, first after one interval (a member that
// just started learns the cluster before it takes work), until ctx is done.
func every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}
