package peer

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// reconnectLoop heals partitions. memberlist gossips to a member it has
// declared dead only for GossipToTheDeadTime and never probes it again, so
// once a partition outlasts that, neither side ever contacts the other:
// after the network heals the cluster stays split, each side seeing the
// other dead. Like Serf's reconnect, every reconnect interval this member
// tries to join each member it holds dead (not left, not yet forgotten);
// a join that reaches one merges the two sides' gossip state.
//
// It tries every interval until ctx is done, joining through ml the members
// that members holds dead.
func reconnectLoop(ctx context.Context, ml *memberlist.Memberlist, members *memberTable, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, n := range members.deadOthers() {
			addr := net.JoinHostPort(net.IP(n.Addr).String(), strconv.Itoa(int(n.Port)))
			if k, err := ml.Join([]string{addr}); k > 0 {
				log.Info("reconnected to a member held dead", "member", n.Name, "addr", addr)
			} else if ctx.Err() == nil {
				log.Debug("reconnect failed", "member", n.Name, "addr", addr, "err", err)
			}
		}
	}
}

// reconnectInterval is how often reconnectLoop tries dead members.
func (c *Config) reconnectInterval() time.Duration {
	if c.Fast {
		return time.Second
	}
	return 10 * time.Second
}

// deadOthers returns the gossip addresses of the members held dead (not
// left).
func (t *memberTable) deadOthers() []*memberlist.Node {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*memberlist.Node
	for _, e := range t.m {
		if e.State == StateDead && !e.Self && len(e.addr) > 0 {
			out = append(out, &memberlist.Node{Name: e.Name, Addr: e.addr, Port: e.port})
		}
	}
	return out
}
