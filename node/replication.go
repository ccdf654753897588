package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/node/placement"
	"github.com/atollhq/atoll/node/replication"
	"github.com/atollhq/atoll/node/route"
	"github.com/atollhq/atoll/peer"
	"github.com/atollhq/atoll/storage"
)

// Replication between registries (package replication), wired to the
// member: push events come from the registry's event sink, blobs are read
// wherever in the cluster they are, and each rule's work on a repository is
// done by the ring owner of "<rule>/<repository>", so it runs once
// cluster-wide and moves to another member when its owner dies.

// setUpReplication creates the replicator of cfg.Replication, if any
// (nil otherwise), and adds it to the registry's event sinks in deps.
func setUpReplication(cfg Config, rd replication.Deps, c clusterWork, deps *api.Deps) (*replication.Replicator, error) {
	if !cfg.Replication.Enabled() {
		return nil, nil
	}
	rd.Open, rd.Owns, rd.DataDir = c.openAnywhere, c.owns, cfg.DataDir
	r, err := replication.New(cfg.Replication, rd)
	if err != nil {
		return nil, err
	}
	if deps.Events == nil {
		deps.Events = r
	} else {
		deps.Events = sinks{deps.Events, r}
	}
	return r, nil
}

// sinks passes each event to every sink, in order.
type sinks []api.EventSink

func (s sinks) Emit(ctx context.Context, e api.Event) {
	for _, sink := range s {
		sink.Emit(ctx, e)
	}
}

// clusterWork is what replication needs of the cluster: which member does
// a piece of work, and the blobs wherever they are.
type clusterWork struct {
	self    string
	cluster *peer.Cluster // nil on its own
	joining bool          // it has a join list
	views   *views
	members *memberClient
	local   *placement.Placer
}

// owns reports whether this member is the ring owner of key. A member that
// has not joined yet owns nothing, so a start does not run work its owner
// runs too.
func (c clusterWork) owns(key string) bool {
	if c.cluster == nil {
		return true
	}
	if c.joining && !c.cluster.Joined() {
		return false
	}
	owners := c.views.load().ring.Owners(digest.FromString(key), 1)
	return len(owners) == 1 && owners[0] == c.self
}

// openAnywhere opens blob d here or, in a cluster, on a member holding it.
func (c clusterWork) openAnywhere(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	b, err := c.local.ReadLocal(ctx, d)
	if err == nil {
		return b, b.Size(), nil
	}
	if !errors.Is(err, storage.ErrBlobUnknown) || c.cluster == nil {
		return nil, 0, err
	}
	v := c.views.load()
	for _, name := range v.preference(d) {
		if name == c.self {
			continue
		}
		req, err := c.members.newRequest(ctx, http.MethodGet, name, route.BlobPath+d.String(), nil)
		if err != nil {
			return nil, 0, err
		}
		resp, err := c.members.do(req)
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
