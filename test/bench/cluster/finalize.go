package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

const repoFinalize = "bench/finalize"

// runFinalize times the final PUT ?digest= of a chunked upload of the
// finalize blob (POST, one PATCH streamed from the file, then the PUT):
// on the single node, and on the R=2 cluster through an owner and through
// the non-owner. The bound: answered within 1 s on either.
func (b *bench) runFinalize(ctx context.Context, round int) error {
	type variant struct {
		c        *cluster
		viaOwner bool
		key      string
	}
	for _, v := range benchkit.Ordered(round, []variant{
		{b.single, true, "finalize-single"}, {b.r2, true, "finalize-r2-owner"}, {b.r2, false, "finalize-r2-nonowner"},
	}) {
		dgst, err := b.blob.Fresh()
		if err != nil {
			return err
		}
		owners := v.c.predict(dgst)
		var via *member
		for _, m := range v.c.members {
			if slices.Contains(owners, m.name) == v.viaOwner {
				via = m
				break
			}
		}
		loc, err := benchkit.StartUpload(ctx, b.hc, via.base, repoFinalize)
		if err != nil {
			return fmt.Errorf("%s via %s: %w", v.c.label, via.name, err)
		}
		size := b.blob.Size()
		hdr := map[string]string{"Content-Type": benchkit.OctetStream, "Content-Range": fmt.Sprintf("0-%d", size-1)}
		resp, err := benchkit.SendStream(ctx, b.hc, http.MethodPatch, loc, b.blob.Section(0, size), size, hdr, http.StatusAccepted)
		if err != nil {
			return fmt.Errorf("%s via %s: PATCH: %w", v.c.label, via.name, err)
		}
		if loc, err = benchkit.NextLocation(resp); err != nil {
			return err
		}
		start := time.Now()
		if err := benchkit.FinishUpload(ctx, b.hc, loc, dgst, nil); err != nil {
			return fmt.Errorf("%s via %s: PUT: %w", v.c.label, via.name, err)
		}
		b.res.record(round, v.key, time.Since(start).Seconds(), "s", v.c.label+" via "+via.name)
	}
	return nil
}

// runConns pulls a small blob 200 times, one GET after the other on one
// keep-alive client, through the R=2 cluster's non-owner, and counts the
// connections opened meanwhile to the owners' HTTP ports: the proxy's
// connections to members are pooled, so a handful at most.
func (b *bench) runConns(ctx context.Context, round int) error {
	const gets = 200
	data, err := benchkit.RandomBytes(64 << 10)
	if err != nil {
		return err
	}
	dgst := benchkit.Digest(data)
	owners := b.r2.predict(dgst)
	if err := benchkit.PushMonolithic(ctx, b.hc, b.r2.byName(owners[0]).base, repoPull, data, dgst); err != nil {
		return err
	}
	holders, others, err := b.r2.placement(dgst)
	if err != nil {
		return err
	}
	var ports []int
	for _, h := range holders {
		ports = append(ports, benchkit.Port(h.host))
	}
	before, err := benchkit.ConnsTo(ports...)
	if err != nil {
		return err
	}
	buf := make([]byte, len(data))
	for i := range gets {
		if _, err := benchkit.Pull(ctx, b.hc, others[0].base, repoPull, dgst, buf); err != nil {
			return fmt.Errorf("GET %d via %s: %w", i, others[0].name, err)
		}
	}
	after, err := benchkit.ConnsTo(ports...)
	if err != nil {
		return err
	}
	opened := 0
	for c := range after {
		if !before[c] {
			opened++
		}
	}
	b.res.record(round, "conns-200-gets", float64(opened), "conns", fmt.Sprintf("%d GETs via %s", gets, others[0].name))
	return nil
}
