package hosts

import (
	"fmt"
	"strconv"
)

// The chain, inside each namespace, that holds a host's partition rules;
// INPUT and OUTPUT jump to it.
const partChain = "ATOLL-PART"

// Limit caps the host's link at mbit megabits per second each way with a
// token bucket (tc tbf): its egress on eth0 inside the namespace, and its
// ingress as the egress of its veth on the bridge. A burst of about 10ms
// of traffic keeps the cap honest over short transfers.
func (h *Host) Limit(mbit int) {
	h.net.t.Helper()
	burst := max(mbit*1000*1000/8/100, 64<<10)
	args := []string{"root", "tbf", "rate", strconv.Itoa(mbit) + "mbit", "burst", strconv.Itoa(burst), "latency", "50ms"}
	if err := run("ip", append([]string{"netns", "exec", h.NS, "tc", "qdisc", "replace", "dev", peerName}, args...)...); err != nil {
		refuse(h.net.t, "capping "+h.Name+"'s egress (tc tbf)", err)
	}
	if err := run("tc", append([]string{"qdisc", "replace", "dev", h.veth}, args...)...); err != nil {
		refuse(h.net.t, "capping "+h.Name+"'s ingress (tc tbf)", err)
	}
}

// Cut takes the host's link down at the bridge: to the others and to the
// machine it is a dead host (no answer, then no route), while its
// processes run on.
func (h *Host) Cut() {
	h.net.t.Helper()
	if err := run("ip", "link", "set", h.veth, "down"); err != nil {
		h.net.t.Fatalf("hosts: cutting %s: %v", h.Name, err)
	}
	h.cut = true
}

// Heal brings a cut link back up.
func (h *Host) Heal() {
	h.net.t.Helper()
	if err := run("ip", "link", "set", h.veth, "up"); err != nil {
		h.net.t.Fatalf("hosts: healing %s: %v", h.Name, err)
	}
	h.cut = false
}

// IsCut says whether the host's link is down.
func (h *Host) IsCut() bool { return h.cut }

// Partition drops every packet between hosts of different groups (inside
// each namespace, both ways, silently: a peer across the cut looks dead).
// The machine still reaches every host, so clients outside see both sides.
// Hosts in no group keep talking to everyone. It adds to any partition
// already in place; HealPartition removes them all.
func (n *Net) Partition(groups ...[]*Host) {
	n.t.Helper()
	for gi, g := range groups {
		for _, a := range g {
			if err := a.ensurePartChain(); err != nil {
				refuse(n.t, "partitioning (iptables in "+a.Name+")", err)
			}
			for gj, other := range groups {
				if gi == gj {
					continue
				}
				for _, b := range other {
					for _, dir := range []string{"-s", "-d"} {
						if err := run("ip", "netns", "exec", a.NS, "iptables", "-w", "-A", partChain, dir, b.IP.String(), "-j", "DROP"); err != nil {
							n.t.Fatalf("hosts: partition %s from %s: %v", a.Name, b.Name, err)
						}
					}
				}
			}
		}
	}
}

// HealPartition removes every partition rule on every host.
func (n *Net) HealPartition() {
	n.t.Helper()
	for _, h := range n.hosts {
		if !h.partChain {
			continue
		}
		if err := run("ip", "netns", "exec", h.NS, "iptables", "-w", "-F", partChain); err != nil {
			n.t.Fatalf("hosts: healing the partition on %s: %v", h.Name, err)
		}
	}
}

func (h *Host) ensurePartChain() error {
	if h.partChain {
		return nil
	}
	ipt := func(args ...string) error {
		return run("ip", append([]string{"netns", "exec", h.NS, "iptables", "-w"}, args...)...)
	}
	if err := ipt("-N", partChain); err != nil {
		return err
	}
	for _, c := range []string{"INPUT", "OUTPUT"} {
		if err := ipt("-I", c, "-j", partChain); err != nil {
			return fmt.Errorf("jump from %s: %w", c, err)
		}
	}
	h.partChain = true
	return nil
}
