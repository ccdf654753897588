package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// The collection's rounds across members (package fence holds the rules).
// A collector sends each batch of candidates to every live member, itself
// included: condemn, then commit; it deletes what all confirmed and then
// releases the batch everywhere. Members answer over HTTP with the
// cluster token, on POST /_atoll/v1/gc/fence.

// gcBatch is how many candidates one round carries.
const gcBatch = 512

// gcRoundTimeout bounds one member's answer to a round.
const gcRoundTimeout = 30 * time.Second

// fenceRequest is one round of a collection, as sent to a member.
type fenceRequest struct {
	Round   string          `json:"round"` // condemn, commit, release or end
	Epoch   string          `json:"epoch"`
	DryRun  bool            `json:"dryRun,omitempty"`
	Blobs   []digest.Digest `json:"blobs"`
	Deleted []digest.Digest `json:"deleted,omitempty"` // release: the blobs deleted
	Stamp   uint64          `json:"stamp,omitempty"`   // release: the collector's metadata clock
}

// fenceReply lists the blobs a member refused.
type fenceReply struct {
	Refused []digest.Digest `json:"refused"`
}

// fenceRound answers one round on this member.
func (n *Node) fenceRound(req fenceRequest) fenceReply {
	switch req.Round {
	case "condemn":
		return fenceReply{Refused: n.fence.Condemn(req.Epoch, req.Blobs, req.DryRun, n.mark)}
	case "commit":
		return fenceReply{Refused: n.fence.Commit(req.Epoch, req.Blobs)}
	case "end":
		n.fence.End(req.Epoch)
		return fenceReply{}
	default: // release
		n.meta.Observe(req.Stamp)
		n.fence.Release(req.Epoch, req.Blobs, req.Deleted)
		if n.cache != nil {
			for _, d := range req.Deleted {
				n.cache.Forget(d)
			}
		}
		return fenceReply{}
	}
}

// serveFence answers POST /_atoll/v1/gc/fence from a collecting member.
func (n *Node) serveFence(w http.ResponseWriter, r *http.Request) {
	if n.cluster == nil || !n.trusted(r) {
		http.Error(w, "cluster token required", http.StatusUnauthorized)
		return
	}
	var req fenceRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		http.Error(w, "bad fence request", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(n.fenceRound(req))
}

// collection is one member's collection across the cluster.
type collection struct {
	n      *Node
	epoch  string
	dryRun bool
}

// collect proposes batch to every member and deletes (or, on a dry run,
// counts) the blobs all of them agree to; it returns those.
func (c *collection) collect(ctx context.Context, batch []heldBlob) ([]heldBlob, error) {
	n := c.n
	members := n.gcMembers()
	ds := make([]digest.Digest, len(batch))
	for i, b := range batch {
		ds[i] = b.d
	}
	release := func(deleted []digest.Digest) {
		// Best effort: a member not reached lets the holds expire.
		if !c.dryRun {
			c.round(ctx, members, fenceRequest{Round: "release", Blobs: ds, Deleted: deleted, Stamp: n.meta.Stamp()})
		}
	}
	agreed, err := c.round(ctx, members, fenceRequest{Round: "condemn", DryRun: c.dryRun, Blobs: ds})
	if err != nil || c.dryRun {
		release(nil)
		return keep(batch, agreed), nil
	}
	agreed, err = c.round(ctx, members, fenceRequest{Round: "commit", Blobs: agreed})
	if err != nil || !slices.Equal(members, n.gcMembers()) {
		release(nil) // a member was not asked, or did not answer
		return nil, nil
	}
	deleted, err := n.sweep(ctx, agreed)
	release(deleted)
	return keep(batch, deleted), err
}

// end tells every member the collection is over, so that they drop what
// they kept for it (best effort: they also forget it after a while).
func (c *collection) end(ctx context.Context) {
	_, _ = c.round(ctx, c.n.gcMembers(), fenceRequest{Round: "end"})
}

// round sends req to every member and returns the blobs of req none of
// them refused. Any member failing to answer refuses them all.
func (c *collection) round(ctx context.Context, members []string, req fenceRequest) ([]digest.Digest, error) {
	req.Epoch = c.epoch
	type answer struct {
		reply fenceReply
		err   error
	}
	answers := make(chan answer, len(members))
	for _, m := range members {
		go func() {
			reply, err := c.n.askFence(ctx, m, req)
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
		if req.Round == "condemn" || req.Round == "commit" {
			c.n.log.Warn("gc: a member did not answer; sparing the batch", "round", req.Round, "err", err)
		}
		return nil, err
	}
	var agreed []digest.Digest
	for _, d := range req.Blobs {
		if !refused[d] {
			agreed = append(agreed, d)
		}
	}
	return agreed, nil
}

// askFence runs one round on member m, here or over HTTP.
func (n *Node) askFence(ctx context.Context, m string, req fenceRequest) (fenceReply, error) {
	if m == n.name {
		return n.fenceRound(req), nil
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fenceReply{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, gcRoundTimeout)
	defer cancel()
	member, ok := n.views.load().members[m]
	if !ok {
		return fenceReply{}, fmt.Errorf("member %s: %w", m, storage.ErrUnavailable)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, n.scheme+"://"+member.HTTP+"/_atoll/v1/gc/fence", bytes.NewReader(body))
	if err != nil {
		return fenceReply{}, err
	}
	hr.Header.Set(tokenHeader, n.token)
	hr.Header.Set("Content-Type", "application/json")
	resp, err := n.client.Do(hr)
	if err != nil {
		return fenceReply{}, fmt.Errorf("member %s: %w", m, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fenceReply{}, fmt.Errorf("member %s: %s", m, resp.Status)
	}
	var reply fenceReply
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		return fenceReply{}, fmt.Errorf("member %s: %w", m, err)
	}
	return reply, nil
}

// gcMembers lists the members a collection asks: this one and every live
// peer, sorted.
func (n *Node) gcMembers() []string {
	if n.cluster == nil {
		return []string{n.name}
	}
	ms := append(n.views.load().peers(), n.name)
	slices.Sort(ms)
	return ms
}

// keep returns the blobs of batch whose digests are in ds.
func keep(batch []heldBlob, ds []digest.Digest) []heldBlob {
	in := map[digest.Digest]bool{}
	for _, d := range ds {
		in[d] = true
	}
	var out []heldBlob
	for _, b := range batch {
		if in[b.d] {
			out = append(out, b)
		}
	}
	return out
}

// blobExists reports whether some member holds blob d now; the fence asks
// it about blobs a collection deleted recently.
func (n *Node) blobExists(ctx context.Context, d digest.Digest) bool {
	if _, err := n.local.Stat(ctx, d); err == nil {
		return true
	}
	if n.cluster == nil {
		return false
	}
	for _, m := range n.views.load().peers() {
		if has, err := n.cluster.Has(ctx, m, []digest.Digest{d}); err == nil && has[0] {
			return true
		}
	}
	return false
}

func (n *Node) fencePath() string { return filepath.Join(n.cfg.DataDir, "fence.json") }

// saveFence saves what clients were told every second, and once more on
// the way out.
func (n *Node) saveFence(ctx context.Context) {
	failing := false
	save := func(context.Context) {
		err := n.fence.Save(n.fencePath())
		if err != nil && !failing {
			n.log.Warn("saving what clients were told", "err", err)
		}
		failing = err != nil
	}
	every(ctx, time.Second, false, save)
	save(ctx)
}
