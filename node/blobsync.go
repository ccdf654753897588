package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// Blob placement. A committed upload is copied to the first Replicas live
// members of the blob's preference list before the client hears 201. A
// rebalance, after each membership change and now and then, copies every
// held blob to owners that lack it and drops copies this member no longer
// owns once all the owners confirmed theirs.

// clusterBlobs decorates the local blob store so that a commit places the
// blob on its owners. It embeds localStore, not storage.BlobStore, so every
// capability a member's store must have reaches the registry through it
// (see capabilities.go).
type clusterBlobs struct {
	localStore
	n *Node
}

func (c clusterBlobs) Writer(ctx context.Context, id string, state []byte) (storage.BlobWriter, error) {
	w, err := c.localStore.Writer(ctx, id, state)
	if err != nil {
		return nil, err
	}
	return placingWriter{BlobWriter: w, n: c.n}, nil
}

type placingWriter struct {
	storage.BlobWriter
	n *Node
}

func (w placingWriter) Commit(ctx context.Context, d digest.Digest) error {
	if err := w.BlobWriter.Commit(ctx, d); err != nil {
		return err
	}
	return w.n.place(ctx, d)
}

// place copies local blob d until Replicas live members (or all, if fewer)
// hold it, walking the preference list past members that fail.
func (n *Node) place(ctx context.Context, d digest.Digest) error {
	v := n.views.load()
	prefs := v.preference(d)
	need := min(n.cfg.Cluster.Replicas, len(prefs))
	held, mine := 0, false
	var errs []error
	for _, m := range prefs {
		if held == need {
			break
		}
		if m == n.name {
			held, mine = held+1, true
			continue
		}
		if err := n.copyBlob(ctx, m, d); err != nil {
			errs = append(errs, err)
			continue
		}
		held++
	}
	if held < need {
		return fmt.Errorf("blob %s on %d of %d members: %w: %w", d, held, need, storage.ErrUnavailable, errors.Join(errs...))
	}
	if !mine {
		// The holders confirmed their copies; this one is surplus.
		if err := n.local.Delete(ctx, d); err != nil && !errors.Is(err, storage.ErrBlobUnknown) {
			n.log.Warn("dropping surplus copy", "blob", d, "err", err)
		}
	}
	return nil
}

// copyBlob streams local blob d to member m unless it has it.
func (n *Node) copyBlob(ctx context.Context, m string, d digest.Digest) error {
	has, err := n.cluster.Has(ctx, m, []digest.Digest{d})
	if err != nil {
		return err
	}
	if has[0] {
		return nil
	}
	return n.sendBlob(ctx, m, d)
}

func (n *Node) sendBlob(ctx context.Context, m string, d digest.Digest) error {
	b, err := n.local.Open(ctx, d)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := n.cluster.PutBlob(ctx, m, d, b.Size(), b); err != nil {
		return fmt.Errorf("copy %s to %s: %w", d, m, err)
	}
	n.metrics.blobsCopied.Inc()
	n.metrics.bytesCopied.Add(float64(b.Size()))
	return nil
}

// kickRebalance asks the rebalance loop for a pass.
func (n *Node) kickRebalance() {
	select {
	case n.rebalanceKick <- struct{}{}:
	default:
	}
}

// rebalanceLoop runs a pass after membership changes (once they settle)
// and every RebalanceInterval.
func (n *Node) rebalanceLoop(ctx context.Context) {
	tick := time.NewTicker(n.cfg.Cluster.RebalanceInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-n.rebalanceKick:
			settle := time.NewTimer(n.settle)
			select {
			case <-ctx.Done():
				settle.Stop()
				return
			case <-settle.C:
			}
		}
		if err := n.rebalance(ctx, n.views.load(), true); err != nil && ctx.Err() == nil {
			n.log.Warn("rebalance", "err", err)
			time.AfterFunc(n.settle, n.kickRebalance) // try again soon
		}
	}
}

type heldBlob struct {
	d    digest.Digest
	size int64
}

// rebalance checks every held blob against view v: owners that lack it get
// a copy; when drop is set, a blob this member does not own is deleted once
// all its owners confirmed it. Progress is logged every few seconds.
func (n *Node) rebalance(ctx context.Context, v *view, drop bool) error {
	if n.cache != nil {
		return nil // a shared bucket holds the one copy
	}
	var held []heldBlob
	if err := n.local.Walk(ctx, func(d digest.Digest, size int64) error {
		held = append(held, heldBlob{d, size})
		return nil
	}); err != nil {
		return err
	}
	start := time.Now()
	p := rebalanceProgress{total: len(held), last: start}
	n.metrics.rebalances.Inc()
	for i := 0; i < len(held); i += 256 {
		if err := n.rebalanceBatch(ctx, v, held[i:min(i+256, len(held))], drop, &p); err != nil {
			return err
		}
		if time.Since(p.last) > 5*time.Second {
			p.last = time.Now()
			n.log.Info("rebalancing", "checked", p.checked, "of", p.total, "copied", p.copied, "bytes", p.bytes, "dropped", p.dropped)
		}
	}
	if p.copied+p.dropped > 0 || p.failed > 0 {
		n.log.Info("rebalanced", "blobs", p.total, "copied", p.copied, "bytes", p.bytes,
			"dropped", p.dropped, "failed", p.failed, "took", time.Since(start).Round(time.Millisecond))
	}
	if p.failed > 0 {
		return fmt.Errorf("%d copies failed", p.failed)
	}
	return nil
}

type rebalanceProgress struct {
	total, checked, copied, dropped, failed int
	bytes                                   int64
	last                                    time.Time
}

func (n *Node) rebalanceBatch(ctx context.Context, v *view, batch []heldBlob, drop bool, p *rebalanceProgress) error {
	want := map[string][]heldBlob{} // owner -> blobs to check there
	owned := map[digest.Digest]bool{}
	owners := map[digest.Digest]int{}
	for _, b := range batch {
		os := v.ring.Owners(b.d, n.cfg.Cluster.Replicas)
		owners[b.d] = len(os)
		for _, o := range os {
			if o == n.name {
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
		has, err := n.cluster.Has(ctx, o, ds)
		if err != nil {
			p.failed += len(blobs)
			continue
		}
		for i, b := range blobs {
			if !has[i] {
				if err := n.sendBlob(ctx, o, b.d); err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					n.log.Debug("rebalance copy", "blob", b.d, "member", o, "err", err)
					p.failed++
					continue
				}
				p.copied++
				p.bytes += b.size
			}
			confirmed[b.d]++
		}
	}
	for _, b := range batch {
		p.checked++
		if drop && !owned[b.d] && owners[b.d] > 0 && confirmed[b.d] == owners[b.d] {
			if err := n.local.Delete(ctx, b.d); err == nil {
				p.dropped++
			}
		}
	}
	return nil
}

// peerBlobs serves other members' blob requests from the local store.
type peerBlobs struct{ n *Node }

func (pb peerBlobs) Has(ctx context.Context, ds []digest.Digest) ([]bool, error) {
	out := make([]bool, len(ds))
	for i, d := range ds {
		_, err := pb.n.local.Stat(ctx, d)
		switch {
		case err == nil:
			out[i] = true
		case !errors.Is(err, storage.ErrBlobUnknown):
			return nil, err
		}
	}
	return out, nil
}

// Put stores a blob another member sends, verifying its digest.
func (pb peerBlobs) Put(ctx context.Context, d digest.Digest, size int64, r io.Reader) error {
	if _, err := pb.n.local.Stat(ctx, d); err == nil {
		return nil
	}
	w, err := pb.n.local.Writer(ctx, "peer-"+pb.n.newUploadID(), nil)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		_ = w.Cancel(ctx)
		return fmt.Errorf("receive %s: %w", d, err)
	}
	if w.Size() != size {
		_ = w.Cancel(ctx)
		return fmt.Errorf("receive %s: %d of %d bytes: %w", d, w.Size(), size, storage.ErrDigestMismatch)
	}
	return w.Commit(ctx, d)
}

func (pb peerBlobs) Open(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error) {
	b, err := pb.n.local.Open(ctx, d)
	if err != nil {
		return nil, 0, err
	}
	return b, b.Size(), nil
}
