package peer

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Default values of Config.
const (
	// DefaultGossipAddr is the default Config.GossipAddr.
	DefaultGossipAddr = "0.0.0.0:7946"
	// DefaultGRPCAddr is the default Config.GRPCAddr.
	DefaultGRPCAddr = "0.0.0.0:7947"
	// DefaultForgetAfter is the default Config.ForgetAfter.
	DefaultForgetAfter = 24 * time.Hour
)

// Config is one member's cluster configuration. Every member of a cluster
// must use the same Secret; the rest is per member.
type Config struct {
	// NodeName is this member's name, unique in the cluster; upload ids and
	// ring ownership refer to members by it. Default: the host name.
	NodeName string `yaml:"nodename"`

	// GossipAddr is the IP:port the gossip protocol binds, TCP and UDP.
	// Default "0.0.0.0:7946". Port 0 picks a free port.
	GossipAddr string `yaml:"gossipaddr"`

	// GRPCAddr is the IP:port the gRPC services bind. Default
	// "0.0.0.0:7947". Port 0 picks a free port.
	GRPCAddr string `yaml:"grpcaddr"`

	// AdvertiseAddr is the host name or IP at which other members reach this
	// one, on the gossip and gRPC ports. Default: the bind host of
	// GossipAddr when it is a specific IP; otherwise the local address that
	// routes to the first join address; otherwise the first private, then
	// the first other non-loopback IPv4 address of an up interface;
	// otherwise 127.0.0.1.
	AdvertiseAddr string `yaml:"advertiseaddr"`

	// HTTPAddr is the host:port at which others reach this member's registry
	// HTTP API (proxying, redirects, status). Required. An empty or
	// unspecified host (":5000", "0.0.0.0:5000") is replaced by the
	// advertised address.
	HTTPAddr string `yaml:"httpaddr"`

	// Join lists members to join: host:port, IP or DNS name. A name that
	// resolves to several addresses joins them all (Swarm's
	// tasks.<service>); a missing port means this member's gossip port.
	// Joining retries in the background until one join succeeds. Default
	// none: a cluster of one that others may join.
	Join []string `yaml:"join"`

	// Secret is the cluster secret. When set, gossip is encrypted with a
	// key derived from it and gRPC calls must carry a token derived from
	// it. Default none: no encryption, no authentication.
	Secret string `yaml:"secret"`

	// Fast selects timings for tests on one machine: a dead member is
	// detected within a few seconds and joins retry every few hundred
	// milliseconds. Default false: memberlist's LAN timings (a dead member
	// is detected within about 5 to 30 seconds).
	Fast bool `yaml:"fast"`

	// ProbeInterval is how often the failure detector probes a random
	// member. Default 1s (Fast: 200ms).
	ProbeInterval time.Duration `yaml:"probeinterval"`

	// GossipInterval is how often queued gossip is sent. Default 200ms
	// (Fast: 20ms).
	GossipInterval time.Duration `yaml:"gossipinterval"`

	// StatsInterval is the shortest time between two broadcasts of the
	// stats given to SetStats. Default 1s (Fast: 50ms).
	StatsInterval time.Duration `yaml:"statsinterval"`

	// ForgetAfter is how long Members keeps reporting a member that died or
	// left. Default 24h.
	ForgetAfter time.Duration `yaml:"forgetafter"`
}

// applyDefaults fills zero fields.
func (c *Config) applyDefaults() error {
	if c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("peer: node name: %w", err)
		}
		c.NodeName = h
	}
	if c.GossipAddr == "" {
		c.GossipAddr = DefaultGossipAddr
	}
	if c.GRPCAddr == "" {
		c.GRPCAddr = DefaultGRPCAddr
	}
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = pick(c.Fast, 200*time.Millisecond, time.Second)
	}
	if c.GossipInterval <= 0 {
		c.GossipInterval = pick(c.Fast, 20*time.Millisecond, 200*time.Millisecond)
	}
	if c.StatsInterval <= 0 {
		c.StatsInterval = pick(c.Fast, 50*time.Millisecond, time.Second)
	}
	if c.ForgetAfter <= 0 {
		c.ForgetAfter = DefaultForgetAfter
	}
	return nil
}

// validate reports fields that cannot work, after applyDefaults.
func (c *Config) validate() error {
	var errs []error
	if _, _, err := splitBind(c.GossipAddr); err != nil {
		errs = append(errs, fmt.Errorf("gossip address: %w", err))
	}
	if _, _, err := splitBind(c.GRPCAddr); err != nil {
		errs = append(errs, fmt.Errorf("gRPC address: %w", err))
	}
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("HTTP address is required"))
	} else if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("HTTP address: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("peer: config: %w", err)
	}
	return nil
}

// joinBackoff returns the first and the longest wait between join attempts.
func (c *Config) joinBackoff() (first, longest time.Duration) {
	if c.Fast {
		return 50 * time.Millisecond, time.Second
	}
	return 500 * time.Millisecond, 30 * time.Second
}

// splitBind splits a bind address "host:port" (host may be empty).
func splitBind(addr string) (net.IP, int, error) {
	host, sport, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, 0, err
	}
	port, err := strconv.ParseUint(sport, 10, 16)
	if err != nil {
		return nil, 0, fmt.Errorf("port %q: %w", sport, err)
	}
	if host == "" {
		return net.IPv4zero, int(port), nil
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, 0, fmt.Errorf("bind host %q is not an IP address", host)
	}
	return ip, int(port), nil
}

func pick[T any](cond bool, yes, no T) T {
	if cond {
		return yes
	}
	return no
}
