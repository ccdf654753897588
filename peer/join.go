package peer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Join contacts the members at addrs (Config.Join syntax: host:port, IP or
// DNS name, every address of a name) once and returns how many answered.
// Addresses of this member are skipped. Start already calls it in the
// background with Config.Join until one join succeeds; call it to join
// other members later or to learn why a join fails. It may be called
// concurrently with everything but Close.
func (c *Cluster) Join(ctx context.Context, addrs []string) (int, error) {
	var targets []string
	var errs []error
	for _, a := range addrs {
		resolved, err := resolveJoin(ctx, a, c.gossipPort)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, t := range resolved {
			if !c.selfAddrs[t] {
				targets = append(targets, t)
			}
		}
	}
	if len(targets) > 0 {
		n, err := c.ml.Join(targets)
		if n > 0 {
			return n, nil
		}
		if m, ok := err.(interface{ WrappedErrors() []error }); ok { // go-multierror
			errs = append(errs, m.WrappedErrors()...)
		} else {
			errs = append(errs, err)
		}
	} else if len(errs) == 0 {
		// Every address is this member's (a one-node Swarm, a compose file
		// naming every member): it is the cluster, until others appear.
		c.alone.Store(true)
		errs = append(errs, errors.New("no address other than this member's"))
	}
	return 0, fmt.Errorf("peer: join %s: %w", strings.Join(addrs, ", "), errors.Join(errs...))
}

// Joined reports whether this member is part of a cluster: it has no join
// list or its join list names only itself (a cluster of one, until others
// join it), a join succeeded, or another member joined it.
func (c *Cluster) Joined() bool {
	return len(c.cfg.Join) == 0 || c.alone.Load() || c.joined.Load() || c.ml.NumMembers() > 1
}

// joinLoop joins Config.Join, retrying with exponential backoff until a
// join succeeds, another member joins this one, or ctx is done. Members may
// start in any order, so a failed join is expected and only logged.
func (c *Cluster) joinLoop(ctx context.Context) {
	wait, longest := c.cfg.joinBackoff()
	for attempt := 1; ; attempt++ {
		if c.ml.NumMembers() > 1 {
			c.joined.Store(true)
			c.log.Info("joined cluster", "members", c.ml.NumMembers(), "via", "incoming")
			return
		}
		jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		n, err := c.Join(jctx, c.cfg.Join)
		cancel()
		c.joinAttempts.Add(1)
		if n > 0 {
			c.joined.Store(true)
			c.log.Info("joined cluster", "members", c.ml.NumMembers(), "contacted", n, "attempts", attempt)
			return
		}
		if ctx.Err() != nil {
			return
		}
		c.log.Info("cluster join failed, retrying", "attempt", attempt, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, longest)
	}
}
