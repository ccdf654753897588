package node

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/node/scrub"
	"github.com/atollhq/atoll/storage"
)

// refetch fetches again the blobs whose bad copy a scrub moved aside here
// and could not replace, because no member holding a good copy answered
// (frozen, cut off, restarting). Each round tries every such blob once
// more, until one arrives from a member, the blob is stored here some
// other way (a push, a holder's rebalance), or every member answers that
// it holds none. The list lives in memory: after a restart the holders'
// rebalance, which the restart starts on every member, brings the blobs.
type refetch struct {
	fetch func(context.Context, digest.Digest) (from string, err error)
	every time.Duration // between rounds
	local storage.BlobStore
	repos func(digest.Digest) []string // the repositories linking a blob
	log   *slog.Logger

	mu   sync.Mutex
	want map[digest.Digest]bool
}

// newRefetch returns the refetch of member n, in a cluster on local
// disks: rounds every minute, a copy that sends nothing for 30 s given up
// (every second and 3 s with fast gossip, in tests).
func newRefetch(n *Node) *refetch {
	c := &blobCopier{self: n.name, local: n.local, views: &n.views, members: n.members, idle: 30 * time.Second}
	r := &refetch{fetch: c.copyHere, every: time.Minute, local: n.local, repos: n.meta.BlobRepos, log: n.log}
	if n.cfg.Cluster.Fast {
		c.idle, r.every = 3*time.Second, time.Second
	}
	return r
}

// repair is a scrub's Repair: it fetches d, and keeps it for the next
// rounds when no member holding a good copy answered, or the scrub ended
// first (the copy here was moved aside all the same).
func (r *refetch) repair(ctx context.Context, d digest.Digest) (string, error) {
	from, err := r.fetch(ctx, d)
	if err != nil && !errors.Is(err, scrub.ErrNoGoodCopy) {
		r.mu.Lock()
		if r.want == nil {
			r.want = map[digest.Digest]bool{}
		}
		r.want[d] = true
		r.mu.Unlock()
	}
	return from, err
}

// run starts a round every r.every until ctx is done.
func (r *refetch) run(ctx context.Context) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.round(ctx)
	}
}

// round tries each blob wanted once.
func (r *refetch) round(ctx context.Context) {
	r.mu.Lock()
	want := slices.Sorted(maps.Keys(r.want))
	r.mu.Unlock()
	for _, d := range want {
		if ctx.Err() != nil {
			return
		}
		if _, err := r.local.Stat(ctx, d); err == nil {
			r.log.Info("scrub: a bad copy moved aside has been replaced meanwhile", "digest", d)
			r.done(d)
			continue
		}
		switch from, err := r.fetch(ctx, d); {
		case err == nil:
			r.log.Info("scrub: a bad copy moved aside was replaced by a good one", "digest", d, "from", from)
		case errors.Is(err, scrub.ErrNoGoodCopy) && len(r.repos(d)) == 0:
			r.log.Info("scrub: a bad copy moved aside was collected meanwhile", "digest", d)
		case errors.Is(err, scrub.ErrNoGoodCopy):
			r.log.Error("scrub: a bad copy moved aside has no good copy left anywhere: push the images of its repositories again",
				"digest", d, "repositories", r.repos(d), "err", err)
		default:
			r.log.Debug("scrub: a bad copy moved aside is not replaced yet", "digest", d, "err", err)
			continue
		}
		r.done(d)
	}
}

func (r *refetch) done(d digest.Digest) {
	r.mu.Lock()
	delete(r.want, d)
	r.mu.Unlock()
}

// wanted returns how many blobs wait to be fetched again.
func (r *refetch) wanted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.want)
}
