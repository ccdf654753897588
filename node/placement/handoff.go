package placement

import (
	"context"
	"slices"

	"github.com/atollhq/atoll/ring"
)

// HandOff, on a graceful stop, copies every held blob to its owners among
// the members that stay, on the ring of those members. Members stopping at
// the same time are not counted on: when none stays (the whole cluster
// stops) the hand-off is skipped, and every member keeps its blobs on its
// disk for when it starts again. Nothing is deleted here, so a hand-off
// cut short loses nothing. Call it after announcing that this member
// leaves and before leaving. It returns nil when every blob reached the
// members that stay, and the last error otherwise.
func (p *Placer) HandOff(ctx context.Context) error {
	if !p.clustered() {
		return nil
	}
	for {
		takers := p.deps.Members.Staying()
		if len(takers) == 0 {
			p.log.Info("hand-off skipped: no other member stays to take the blobs")
			return nil
		}
		p.log.Info("handing off blobs before leaving", "to", takers)
		err := p.Rebalance(ctx, ring.New(p.cfg.Ring, takers), false)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || slices.Equal(p.deps.Members.Staying(), takers) {
			p.log.Warn("hand-off incomplete", "err", err)
			return err
		}
		// Some took part in the hand-off and are leaving too: again,
		// with those that stay.
	}
}
