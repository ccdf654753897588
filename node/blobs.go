package node

import (
	"github.com/atollhq/atoll/node/placement"
)

// newPlacer wires blob placement (node/placement) to this member: its
// store, its cache of a bucket, and in a cluster the transport and the
// view of the members. Call it once the cluster and its first view exist.
func (n *Node) newPlacer() (*placement.Placer, error) {
	deps := placement.Deps{
		Self:         n.name,
		Local:        n.local,
		Cache:        n.cache,
		UploadMember: uploadMember,
		Metrics: placement.Metrics{
			BlobsCopied: n.metrics.blobsCopied,
			BytesCopied: n.metrics.bytesCopied,
			Rebalances:  n.metrics.rebalances,
		},
		Logger: n.log,
	}
	if n.cluster != nil {
		deps.Transport, deps.Members = n.cluster.Client(), placementMembers{views: &n.views, membership: n.membership}
		deps.Peer, _ = n.cluster.ServedBlobs().(placement.PeerBlobs)
	}
	return placement.New(n.cfg.Cluster.Placement, deps)
}

// placementMembers is the cluster as placement sees it: the current view.
type placementMembers struct {
	views      *views
	membership *membership
}

func (m placementMembers) Ring() placement.Ring    { return m.views.load().ring }
func (m placementMembers) Live(member string) bool { return m.views.load().live(member) }
func (m placementMembers) Staying() []string       { return m.membership.staying() }
