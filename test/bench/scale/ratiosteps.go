package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

func digestOf(s string) digest.Digest { return digest.Digest(s) }

// pushRound times, in the round's order, the pushes of one round and the
// link's bound for the same bytes.
func (r *ratioHosts) pushRound(ctx context.Context, res series, blob *benchkit.BlobFile, mib, round int) error {
	size := blob.Size()
	for _, key := range benchkit.Ordered(round, []string{"push-single", "push-owner", "push-nonowner", "post-digest-nonowner", "link-push"}) {
		if key == "link-push" {
			mbps, err := linkTransfer(r.sink, size, true)
			if err != nil {
				return err
			}
			res.record(r.mbit, mib, key, mbps, "MB/s", "bare TCP to "+r.sink)
			continue
		}
		dgst, err := blob.Fresh()
		if err != nil {
			return err
		}
		owners, other := r.owners(dgst)
		via := map[string]*member{"push-single": r.single, "push-owner": owners[0],
			"push-nonowner": other, "post-digest-nonowner": other}[key]
		syncDisks()
		start := time.Now()
		if key == "post-digest-nonowner" {
			err = postDigest(ctx, r.hc, via.base(), blob, dgst)
		} else {
			err = benchkit.PushFile(ctx, r.hc, via.base(), repoRatios, blob, dgst)
		}
		elapsed := time.Since(start)
		if err != nil {
			return fmt.Errorf("%s via %s: %w", key, via.name, err)
		}
		res.record(r.mbit, mib, key, benchkit.MBps(size, elapsed), "MB/s", "via "+via.name)
		if via == r.single {
			syncDisks()
			continue
		}
		// A 201 means both copies are durable: check where they are, then
		// let rebalancing move a session's copies to the owners (untimed).
		if got := r.holders(dgst); len(got) < 2 {
			return fmt.Errorf("%s via %s: blob on %v after the 201, want 2 members", key, via.name, got)
		}
		if err := r.settle(ctx, dgst); err != nil {
			return fmt.Errorf("%s via %s: %w", key, via.name, err)
		}
	}
	return nil
}

// postDigest uploads the blob as one POST ?digest= with the body streamed
// from the file.
func postDigest(ctx context.Context, hc *http.Client, base string, blob *benchkit.BlobFile, dgst string) error {
	u := base + "/v2/" + repoRatios + "/blobs/uploads/?digest=" + url.QueryEscape(dgst)
	_, err := benchkit.SendStream(ctx, hc, http.MethodPost, u, blob.Section(0, blob.Size()), blob.Size(),
		map[string]string{"Content-Type": benchkit.OctetStream}, http.StatusCreated)
	return err
}

// pullRounds places one blob on its owners, checks its content through
// each path once (untimed; it warms connections and page caches), then
// in every round times full GETs through an owner, through the non-owner
// and from the sink, in one order and then the reverse.
func (r *ratioHosts) pullRounds(ctx context.Context, cfg config, res series, blob *benchkit.BlobFile, mib int) error {
	dgst, err := blob.Fresh()
	if err != nil {
		return err
	}
	owners, other := r.owners(dgst)
	if err := benchkit.PushFile(ctx, r.hc, owners[0].base(), repoRatios, blob, dgst); err != nil {
		return fmt.Errorf("placing the blob to pull: %w", err)
	}
	if err := r.settle(ctx, dgst); err != nil {
		return err
	}
	paths := map[string]*member{"pull-owner": owners[0], "pull-nonowner": other}
	for key, m := range paths {
		got, err := benchkit.PullDigest(ctx, r.hc, blobURL(m, dgst))
		if err != nil {
			return fmt.Errorf("%s via %s: %w", key, m.name, err)
		}
		if got != dgst {
			return fmt.Errorf("%s via %s: content %s, want %s", key, m.name, got, dgst)
		}
	}
	size := blob.Size()
	for round := 1; round <= cfg.ratioRounds; round++ {
		keys := benchkit.Ordered(round, []string{"pull-owner", "pull-nonowner", "link-pull"})
		back := slices.Clone(keys)
		slices.Reverse(back)
		for _, key := range append(keys, back...) {
			if key == "link-pull" {
				mbps, err := linkTransfer(r.sink, size, false)
				if err != nil {
					return err
				}
				res.record(r.mbit, mib, key, mbps, "MB/s", "bare TCP from "+r.sink)
				continue
			}
			m := paths[key]
			start := time.Now()
			if err := benchkit.PullDiscard(ctx, r.hc, blobURL(m, dgst), size); err != nil {
				return fmt.Errorf("%s via %s: %w", key, m.name, err)
			}
			res.record(r.mbit, mib, key, benchkit.MBps(size, time.Since(start)), "MB/s", "via "+m.name)
		}
	}
	return nil
}

func blobURL(m *member, dgst string) string {
	return m.base() + "/v2/" + repoRatios + "/blobs/" + dgst
}

// finalizeRound times the final PUT ?digest= of a chunked upload (POST,
// one PATCH streamed from the file, then the PUT) on the single node, and
// through an owner and the non-owner of the cluster, in the round's order.
func (r *ratioHosts) finalizeRound(ctx context.Context, res series, blob *benchkit.BlobFile, round int) error {
	mib := int(blob.Size() >> 20)
	for _, key := range benchkit.Ordered(round, []string{"finalize-single", "finalize-owner", "finalize-nonowner"}) {
		dgst, err := blob.Fresh()
		if err != nil {
			return err
		}
		owners, other := r.owners(dgst)
		via := map[string]*member{"finalize-single": r.single, "finalize-owner": owners[0], "finalize-nonowner": other}[key]
		loc, err := benchkit.StartUpload(ctx, r.hc, via.base(), repoRatios)
		if err != nil {
			return fmt.Errorf("%s via %s: %w", key, via.name, err)
		}
		size := blob.Size()
		hdr := map[string]string{"Content-Type": benchkit.OctetStream, "Content-Range": fmt.Sprintf("0-%d", size-1)}
		resp, err := benchkit.SendStream(ctx, r.hc, http.MethodPatch, loc, blob.Section(0, size), size, hdr, http.StatusAccepted)
		if err != nil {
			return fmt.Errorf("%s via %s: PATCH: %w", key, via.name, err)
		}
		if loc, err = benchkit.NextLocation(resp); err != nil {
			return err
		}
		start := time.Now()
		if err := benchkit.FinishUpload(ctx, r.hc, loc, dgst, nil); err != nil {
			return fmt.Errorf("%s via %s: PUT: %w", key, via.name, err)
		}
		res.record(r.mbit, mib, key, time.Since(start).Seconds(), "s", "via "+via.name)
		if via == r.single {
			syncDisks()
			continue
		}
		if err := r.settle(ctx, dgst); err != nil {
			return fmt.Errorf("%s via %s: %w", key, via.name, err)
		}
	}
	return nil
}
