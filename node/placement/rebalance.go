package placement

import (
	"context"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
)

// rebalanceBatch is how many held blobs one Has call per owner asks about.
const rebalanceBatch = 256

// Kick asks the rebalance loop for a pass, after Settle. It never blocks;
// kicks during a pass or a wait make one more pass.
func (p *Placer) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run rebalances after each Kick (once membership settles) and every
// RebalanceInterval, until ctx is done. A pass that fails is tried again
// after Settle.
func (p *Placer) Run(ctx context.Context) {
	if !p.clustered() {
		return
	}
	tick := time.NewTicker(p.cfg.RebalanceInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-p.kick:
			settle := time.NewTimer(p.cfg.Settle)
			select {
			case <-ctx.Done():
				settle.Stop()
				return
			case <-settle.C:
			}
		}
		if err := p.Rebalance(ctx, p.deps.Members.Ring(), true); err != nil && ctx.Err() == nil {
			p.log.Warn("rebalance", "err", err)
			time.AfterFunc(p.cfg.Settle, p.Kick) // try again soon
		}
	}
}

type heldBlob struct {
	d    digest.Digest
	size int64
}

type rebalanceProgress struct {
	total, checked, copied, dropped, failed int
	bytes                                   int64
	last                                    time.Time
}

// Rebalance checks every held blob against ring r: owners that lack it get
// a copy; when drop is set, a blob this member does not own is deleted once
// every one of its owners confirmed holding it (a failing owner keeps the
// copy here). Progress is logged every few seconds. It returns an error if
// any copy failed. On a shared bucket it does nothing: the bucket holds the
// one copy.
func (p *Placer) Rebalance(ctx context.Context, r Ring, drop bool) error {
	if !p.clustered() || p.deps.Cache != nil {
		return nil
	}
	var held []heldBlob
	if err := p.deps.Local.Walk(ctx, func(d digest.Digest, size int64) error {
		held = append(held, heldBlob{d, size})
		return nil
	}); err != nil {
		return err
	}
	start := time.Now()
	pr := rebalanceProgress{total: len(held), last: start}
	p.deps.Metrics.Rebalances.Inc()
	for i := 0; i < len(held); i += rebalanceBatch {
		if err := p.rebalanceBatch(ctx, r, held[i:min(i+rebalanceBatch, len(held))], drop, &pr); err != nil {
			return err
		}
		if time.Since(pr.last) > 5*time.Second {
			pr.last = time.Now()
			p.log.Info("rebalancing", "checked", pr.checked, "of", pr.total, "copied", pr.copied, "bytes", pr.bytes, "dropped", pr.dropped)
		}
	}
	if pr.copied+pr.dropped > 0 || pr.failed > 0 {
		p.log.Info("rebalanced", "blobs", pr.total, "copied", pr.copied, "bytes", pr.bytes,
			"dropped", pr.dropped, "failed", pr.failed, "took", time.Since(start).Round(time.Millisecond))
	}
	if pr.failed > 0 {
		return fmt.Errorf("%d copies failed", pr.failed)
	}
	return nil
}

func (p *Placer) rebalanceBatch(ctx context.Context, r Ring, batch []heldBlob, drop bool, pr *rebalanceProgress) error {
	want := map[string][]heldBlob{} // owner -> blobs to check there
	owned := map[digest.Digest]bool{}
	owners := map[digest.Digest]int{}
	for _, b := range batch {
		os := r.Owners(b.d, p.cfg.Replicas)
		owners[b.d] = len(os)
		for _, o := range os {
			if o == p.deps.Self {
				owned[b.d] = true
			} else {
				want[o] = append(want[o], b)
			}
		}
	}
	confirmed := map[digest.Digest]int{}
	for o, blobs := range want {
		ds := make([]digest.Digest, len(blobs))
		for i, b := range blobs {
			ds[i] = b.d
		}
		has, err := p.deps.Transport.Has(ctx, o, ds)
		if err != nil {
			pr.failed += len(blobs)
			continue
		}
		for i, b := range blobs {
			if !has[i] {
				if err := p.sendBlob(ctx, o, b.d); err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					p.log.Debug("rebalance copy", "blob", b.d, "member", o, "err", err)
					pr.failed++
					continue
				}
				pr.copied++
				pr.bytes += b.size
			}
			confirmed[b.d]++
		}
	}
	for _, b := range batch {
		pr.checked++
		if drop && !owned[b.d] && owners[b.d] > 0 && confirmed[b.d] == owners[b.d] {
			if err := p.deps.Local.Delete(ctx, b.d); err == nil {
				pr.dropped++
			}
		}
	}
	return nil
}
