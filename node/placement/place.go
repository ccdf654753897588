package placement

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// clusterBlobs decorates the local blob store so that a commit places the
// blob on its owners. It embeds LocalStore, not storage.BlobStore, so every
// capability a member's store must have reaches the registry through it
// (see capabilities.go).
type clusterBlobs struct {
	LocalStore
	p *Placer
}

// Writer opens a client's upload. With a transport that keeps replicas,
// the bytes reach the session's other holders as they arrive
// (replicate.go); otherwise the commit copies the blob to its owners.
func (c clusterBlobs) Writer(ctx context.Context, id string, state []byte) (storage.BlobWriter, error) {
	if rt, ok := c.p.deps.Transport.(ReplicaTransport); ok {
		local := func(state []byte) (storage.BlobWriter, error) { return c.LocalStore.Writer(ctx, id, state) }
		return c.p.newReplicatingWriter(rt, local, id, state)
	}
	w, err := c.LocalStore.Writer(ctx, id, state)
	if err != nil {
		return nil, err
	}
	return placingWriter{BlobWriter: w, p: c.p}, nil
}

// WriterFor implements api.KnownDigestWriter: the bytes of a blob whose
// digest is known from the start (a monolithic upload) go straight to its
// owners as they arrive.
func (c clusterBlobs) WriterFor(ctx context.Context, id string, d digest.Digest) (storage.BlobWriter, error) {
	rt, ok := c.p.deps.Transport.(ReplicaTransport)
	if !ok {
		return c.Writer(ctx, id, nil)
	}
	w, err := c.LocalStore.Writer(ctx, id, nil)
	if err != nil {
		return nil, err
	}
	return c.p.newOwnersWriter(rt, w, id, d), nil
}

// placingWriter places the blob it commits.
type placingWriter struct {
	storage.BlobWriter
	p *Placer
}

func (w placingWriter) Commit(ctx context.Context, d digest.Digest) error {
	if err := w.BlobWriter.Commit(ctx, d); err != nil {
		return err
	}
	return w.p.Place(ctx, d)
}

// Place copies local blob d until Replicas live members (or all, if fewer)
// hold it, walking the preference list past members that fail. When the
// ring does not count this member among those holders, its copy is deleted
// once they all confirmed theirs. It returns storage.ErrUnavailable when
// fewer members than that took the blob; this member's copy then stays.
func (p *Placer) Place(ctx context.Context, d digest.Digest) error {
	if !p.clustered() {
		return nil
	}
	r := p.deps.Members.Ring()
	prefs := r.Owners(d, r.Len())
	need := min(p.cfg.Replicas, len(prefs))
	held, mine := 0, false
	var errs []error
	for _, m := range prefs {
		if held == need {
			break
		}
		if m == p.deps.Self {
			held, mine = held+1, true
			continue
		}
		if err := p.copyBlob(ctx, m, d); err != nil {
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
		if err := p.deps.Local.Delete(ctx, d); err != nil && !errors.Is(err, storage.ErrBlobUnknown) {
			p.log.Warn("dropping surplus copy", "blob", d, "err", err)
		}
	}
	return nil
}

// copyBlob streams local blob d to member m unless it has it.
func (p *Placer) copyBlob(ctx context.Context, m string, d digest.Digest) error {
	has, err := p.deps.Transport.Has(ctx, m, []digest.Digest{d})
	if err != nil {
		return err
	}
	if has[0] {
		return nil
	}
	return p.sendBlob(ctx, m, d)
}

// sendBlob streams local blob d to member m.
func (p *Placer) sendBlob(ctx context.Context, m string, d digest.Digest) error {
	b, err := p.deps.Local.Open(ctx, d)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := p.deps.Transport.PutBlob(ctx, m, d, b.Size(), b); err != nil {
		return fmt.Errorf("copy %s to %s: %w", d, m, err)
	}
	p.deps.Metrics.BlobsCopied.Inc()
	p.deps.Metrics.BytesCopied.Add(float64(b.Size()))
	return nil
}
