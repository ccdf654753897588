package gc

import (
	"context"
	"errors"
	"slices"

	"github.com/opencontainers/go-digest"
)

// The collection's rounds across members (package fence holds the rules).
// A collector sends each batch of candidates to every live member, itself
// included: condemn, then commit; it deletes what all confirmed and then
// releases the batch everywhere; at the end it tells every member the
// collection is over.

// batchSize is how many candidates one round carries.
const batchSize = 512

// Rounds of a collection.
const (
	Condemn = "condemn"
	Commit  = "commit"
	Release = "release"
	End     = "end"
)

// Round is one round of a collection, as sent to a member.
type Round struct {
	Round   string          `json:"round"` // Condemn, Commit, Release or End
	Epoch   string          `json:"epoch"`
	DryRun  bool            `json:"dryRun,omitempty"`
	Blobs   []digest.Digest `json:"blobs"`
	Deleted []digest.Digest `json:"deleted,omitempty"` // Release: the blobs deleted
	Stamp   uint64          `json:"stamp,omitempty"`   // Release: the collector's metadata clock
}

// Reply lists the blobs a member refused.
type Reply struct {
	Refused []digest.Digest `json:"refused"`
}

// Answer runs round r of another member's collection (or this one's) on
// this member.
func (c *Collector) Answer(r Round) Reply {
	f := c.deps.Fence
	switch r.Round {
	case Condemn:
		return Reply{Refused: f.Condemn(r.Epoch, r.Blobs, r.DryRun, c.mark)}
	case Commit:
		return Reply{Refused: f.Commit(r.Epoch, r.Blobs)}
	case End:
		f.End(r.Epoch)
		return Reply{}
	default: // Release
		c.deps.Meta.Observe(r.Stamp)
		f.Release(r.Epoch, r.Blobs, r.Deleted)
		if c.deps.Deleted != nil {
			for _, d := range r.Deleted {
				c.deps.Deleted(d)
			}
		}
		return Reply{}
	}
}

// collection is one member's collection across the cluster.
type collection struct {
	c      *Collector
	epoch  string
	dryRun bool
}

// collect proposes batch to every member and deletes (or, on a dry run,
// counts) the blobs all of them agree to; it returns those.
func (col *collection) collect(ctx context.Context, batch []held) ([]held, error) {
	members := col.c.members()
	ds := make([]digest.Digest, len(batch))
	for i, b := range batch {
		ds[i] = b.d
	}
	release := func(deleted []digest.Digest) {
		// Best effort: a member not reached lets the holds expire.
		if !col.dryRun {
			_, _ = col.round(ctx, members, Round{Round: Release, Blobs: ds, Deleted: deleted, Stamp: col.c.deps.Meta.Stamp()})
		}
	}
	agreed, err := col.round(ctx, members, Round{Round: Condemn, DryRun: col.dryRun, Blobs: ds})
	if err != nil || col.dryRun {
		release(nil)
		return keep(batch, agreed), nil
	}
	agreed, err = col.round(ctx, members, Round{Round: Commit, Blobs: agreed})
	if err != nil || !slices.Equal(members, col.c.members()) {
		release(nil) // a member was not asked, or did not answer
		return nil, nil
	}
	deleted, err := col.c.sweep(ctx, agreed)
	release(deleted)
	return keep(batch, deleted), err
}

// end tells every member the collection is over, so that they drop what
// they kept for it (best effort: they also forget it after a while).
func (col *collection) end(ctx context.Context) {
	_, _ = col.round(ctx, col.c.members(), Round{Round: End})
}

// round sends r to every member and returns the blobs of r none of them
// refused. Any member failing to answer refuses them all.
func (col *collection) round(ctx context.Context, members []string, r Round) ([]digest.Digest, error) {
	r.Epoch = col.epoch
	type answer struct {
		reply Reply
		err   error
	}
	answers := make(chan answer, len(members))
	for _, m := range members {
		go func() {
			reply, err := col.c.ask(ctx, m, r)
			answers <- answer{reply, err}
		}()
	}
	refused := map[digest.Digest]bool{}
	var errs []error
	for range members {
		a := <-answers
		if a.err != nil {
			errs = append(errs, a.err)
		}
		for _, d := range a.reply.Refused {
			refused[d] = true
		}
	}
	if err := errors.Join(errs...); err != nil {
		if r.Round == Condemn || r.Round == Commit {
			col.c.deps.Log.Warn("gc: a member did not answer; sparing the batch", "round", r.Round, "err", err)
		}
		return nil, err
	}
	var agreed []digest.Digest
	for _, d := range r.Blobs {
		if !refused[d] {
			agreed = append(agreed, d)
		}
	}
	return agreed, nil
}

// ask runs round r on member m, here or there.
func (c *Collector) ask(ctx context.Context, m string, r Round) (Reply, error) {
	if m == c.deps.Self {
		return c.Answer(r), nil
	}
	return c.deps.Members.Ask(ctx, m, r)
}

// members lists the members a collection asks: this one and every live
// peer, sorted.
func (c *Collector) members() []string {
	if c.deps.Members == nil {
		return []string{c.deps.Self}
	}
	return c.deps.Members.Names()
}

// keep returns the blobs of batch whose digests are in ds.
func keep(batch []held, ds []digest.Digest) []held {
	in := map[digest.Digest]bool{}
	for _, d := range ds {
		in[d] = true
	}
	var out []held
	for _, b := range batch {
		if in[b.d] {
			out = append(out, b)
		}
	}
	return out
}
