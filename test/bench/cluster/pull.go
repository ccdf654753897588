package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

// relays are the bare relay processes (relay.go) in front of the R=2
// cluster's members: for each mode, the relay address for each member.
type relays struct {
	procs []*benchkit.Proc
	addrs map[string]map[string]string // mode -> member name -> host:port
}

// startRelays starts one relay process per mode, relaying a port of its
// own to each member of c, and waits until every port accepts.
func startRelays(ctx context.Context, c *cluster, timeout time.Duration) (*relays, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	rs := &relays{addrs: map[string]map[string]string{}}
	for _, mode := range []string{relaySplice, relayCopy} {
		addrs, err := benchkit.FreeAddrs(len(c.members))
		if err != nil {
			return rs, err
		}
		rs.addrs[mode] = map[string]string{}
		var pairs []string
		for i, m := range c.members {
			rs.addrs[mode][m.name] = addrs[i]
			pairs = append(pairs, addrs[i]+"="+m.host)
		}
		log := filepath.Join(filepath.Dir(c.members[0].dir), "relay-"+mode+".log")
		p, err := benchkit.Start("relay-"+mode, log, bin, []string{"-relay", strings.Join(pairs, ","), "-relay-mode", mode}, nil)
		if err != nil {
			return rs, fmt.Errorf("relay %s: %w", mode, err)
		}
		rs.procs = append(rs.procs, p)
		err = benchkit.Poll(ctx, timeout, p, func(ctx context.Context) error {
			for _, a := range addrs {
				conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", a)
				if err != nil {
					return err
				}
				_ = conn.Close()
			}
			return nil
		})
		if err != nil {
			return rs, fmt.Errorf("relay %s: %w", mode, err)
		}
	}
	return rs, nil
}

func (rs *relays) stop() {
	for _, p := range rs.procs {
		p.Kill()
	}
}

// pullStep is one timed pull: through base, answered by one of hosts, the
// value recorded under key.
type pullStep struct {
	key, via, base string
	hosts          []string
}

// runPull pushes a fresh blob to each cluster through an owner (untimed),
// finds the holders in the data dirs, then, after one untimed pull
// through each path, times full GETs through the ring's first owner and a
// non-holder (and, on the R=2 cluster, through the bare relays in front of
// that owner) in one order and then the reverse (the reverse order first
// on even rounds), so each row gets two samples per round. The digest is
// checked after the timer.
func (b *bench) runPull(ctx context.Context, round int) error {
	if b.relays == nil {
		rs, err := startRelays(ctx, b.r2, b.cfg.startTimeout)
		b.relays = rs
		if err != nil {
			return err
		}
	}
	type variant struct {
		c                  *cluster
		ownerKey, otherKey string
	}
	vs := benchkit.Ordered(round, []variant{
		{b.r1proxy, "pull-r1-owner", "pull-r1-proxy"},
		{b.r1redirect, "pull-r1-owner", "pull-r1-redirect"},
		{b.r2, "pull-r2-owner", "pull-r2-proxy"},
	})
	for _, v := range vs {
		data, dgst := b.Fresh()
		via := v.c.byName(v.c.predict(dgst)[0])
		if err := benchkit.PushMonolithic(ctx, b.hc, via.base, repoPull, data, dgst); err != nil {
			return fmt.Errorf("%s: pushing the blob to pull via %s: %w", v.c.label, via.name, err)
		}
		holders, others, err := v.c.placement(dgst)
		if err != nil {
			return err
		}
		if !slices.Contains(holders, via) {
			return fmt.Errorf("%s: the blob pushed through its first owner %s is on %v", v.c.label, via.name, names(holders))
		}
		// Proxy and owner answers come from the member asked; a redirect
		// must land on a holder.
		other := []string{others[0].host}
		if v.c.routing == "redirect" {
			other = other[:0]
			for _, h := range holders {
				other = append(other, h.host)
			}
		}
		// The owner row, the relays and a proxying member all read from the
		// ring's first owner (via).
		steps := []pullStep{
			{v.ownerKey, via.name, via.base, []string{via.host}},
			{v.otherKey, others[0].name, others[0].base, other},
		}
		if v.c == b.r2 {
			for _, mode := range []string{relaySplice, relayCopy} {
				a := b.relays.addrs[mode][via.name]
				steps = append(steps, pullStep{"pull-r2-relay-" + mode, "relay-" + mode + " to " + via.name, "http://" + a, []string{a}})
			}
		}
		// Untimed, one pull through each path first: the members settle
		// after the push (the first reads after it ran at a quarter of the
		// next ones' speed), connections and page cache are warm.
		for _, s := range steps {
			if _, err := benchkit.Pull(ctx, b.hc, s.base, repoPull, dgst, b.Recv); err != nil {
				return fmt.Errorf("%s: warm-up pull via %s: %w", v.c.label, s.via, err)
			}
		}
		steps = benchkit.Ordered(round, steps)
		back := slices.Clone(steps)
		slices.Reverse(back)
		for _, s := range append(steps, back...) {
			if err := b.timePull(ctx, round, v.c, s, data, dgst); err != nil {
				return err
			}
		}
	}
	return nil
}

// timePull GETs blob dgst through s, checks who answered and what came,
// and records the speed.
func (b *bench) timePull(ctx context.Context, round int, c *cluster, s pullStep, data []byte, dgst string) error {
	start := time.Now()
	host, err := benchkit.Pull(ctx, b.hc, s.base, repoPull, dgst, b.Recv)
	elapsed := time.Since(start)
	if err != nil {
		return fmt.Errorf("%s: pull via %s: %w", c.label, s.via, err)
	}
	if got := benchkit.Digest(b.Recv); got != dgst {
		return fmt.Errorf("%s: pull via %s: content digest %s, want %s", c.label, s.via, got, dgst)
	}
	if !slices.Contains(s.hosts, host) {
		return fmt.Errorf("%s: pull via %s was answered by %s, want one of %v", c.label, s.via, host, s.hosts)
	}
	b.res.record(round, s.key, benchkit.MBps(int64(len(data)), elapsed), "MB/s", c.label+" via "+s.via)
	return nil
}
