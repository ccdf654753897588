package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/node/replication"
	"github.com/atollhq/atoll/node/route"
	"github.com/atollhq/atoll/storage"
)

// Replication between registries (package replication), wired to the
// member: push events come from the registry's event sink, blobs are read
// wherever in the cluster they are, and each rule's work on a repository is
// done by the ring owner of "<rule>/<repository>", so it runs once
// cluster-wide and moves to another member when its owner dies.

// setUpReplication creates the replicator of cfg.Replication, if any, and
// adds it to the registry's event sinks in deps.
func (n *Node) setUpReplication(deps *api.Deps) error {
	if !n.cfg.Replication.Enabled() {
		return nil
	}
	r, err := replication.New(n.cfg.Replication, replication.Deps{
		Blobs: n.served, Meta: n.meta, Open: n.openAnywhere, Owns: n.owns,
		DataDir: n.cfg.DataDir, Logger: n.log, Metrics: n.metrics.reg,
	})
	if err != nil {
		return err
	}
	n.replication = r
	if deps.Events == nil {
		deps.Events = r
	} else {
		deps.Events = sinks{deps.Events, r}
	}
	return nil
}

// sinks passes each event to every sink, in order.
type sinks []api.EventSink

func (s sinks) Emit(ctx context.Context, e api.Event) {
	for _, sink := range s {
		sink.Emit(ctx, e)
	}
}

// owns reports whether this member is the ring owner of key. A member that
// has not joined yet owns nothing, so a start does not run work its owner
// runs too.
func (n *Node) owns(key string) bool {
	if n.cluster == nil {
		return true
	}
	if len(n.cfg.Cluster.Join) > 0 && !n.cluster.Joined() {
		return false
	}
	owners := n.views.load().ring.Owners(digest.FromString(key), 1)
	return len(owners) == 1 && owners[0] == n.name
}

// openAnywhere opens blob d here or, in a cluster, on a member holding it.
func (n *Node) openAnywhere(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	b, err := n.blobs.ReadLocal(ctx, d)
	if err == nil {
		return b, b.Size(), nil
	}
	if !errors.Is(err, storage.ErrBlobUnknown) || n.cluster == nil {
		return nil, 0, err
	}
	v := n.views.load()
	for _, name := range v.preference(d) {
		if name == n.name {
			continue
		}
		req, err := n.members.newRequest(ctx, http.MethodGet, name, route.BlobPath+d.String(), nil)
		if err != nil {
			return nil, 0, err
		}
		resp, err := n.members.do(req)
		if err != nil {
			continue
		}
		if resp.StatusCode != http.StatusOK {
			_ = resp.Body.Close()
			continue
		}
		return resp.Body, resp.ContentLength, nil
	}
	return nil, 0, fmt.Errorf("blob %s on no member: %w", d, storage.ErrBlobUnknown)
}
