package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/opencontainers/go-digest"
	"google.golang.org/grpc"
)

// Blobs is the local blob store as the Blobs service needs it; node
// implements it. All methods may be called concurrently, by any number of
// calls from other members.
type Blobs interface {
	// Has reports, for each digest in order, whether this member holds
	// the blob.
	Has(ctx context.Context, ds []digest.Digest) ([]bool, error)
	// Put stores the size bytes read from r as blob d, durably, after
	// verifying that they hash to d; otherwise it stores nothing and
	// returns storage.ErrDigestMismatch. r fails if the sender sends more
	// or fewer than size bytes or goes away; Put then stores nothing.
	// Storing a blob already held is no error, and Put need not read r
	// then.
	Put(ctx context.Context, d digest.Digest, size int64, r io.Reader) error
}

// Events hears about membership. After Start, MembershipChanged is called
// whenever a member joins, dies, leaves or changes its metadata (addresses,
// stats). It is called from memberlist's goroutines, one call at a time,
// and must not block: gossip waits for it. Read the new state with
// Members; read it once after Start for the state before.
type Events interface {
	MembershipChanged()
}

// Deps are what a Cluster serves and tells.
type Deps struct {
	// Metadata answers the Metadata service. Nil answers Unimplemented.
	Metadata Metadata
	// Blobs answers the Blobs service. Nil answers Unimplemented.
	Blobs Blobs
	// Events hears membership changes. May be nil.
	Events Events
	// Logger receives the cluster's logs, memberlist's at debug level.
	// Nil discards them.
	Logger *slog.Logger
}

// Cluster is this member of the cluster: its gossip, its gRPC services,
// and the client of the other members' services (Client). Its parts:
// membershipEvents records what gossip reports and tells Events,
// localStats is what this member advertises, Client calls the others.
// Its methods may be called concurrently.
type Cluster struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	ml         *memberlist.Memberlist
	members    *memberTable
	pool       *connPool
	client     *Client
	srv        *grpc.Server
	lis        net.Listener
	gossipPort int
	selfAddrs  map[string]bool // "IP:port" of this member's gossip, skipped when joining
	gossipAddr string          // advertised
	httpAddr   string          // advertised
	grpcAddr   string          // advertised

	stats  *localStats
	events *membershipEvents

	started      atomic.Bool
	joined       atomic.Bool
	announced    atomic.Bool  // AnnounceLeaving ran
	alone        atomic.Bool  // the join list named only this member
	joinAttempts atomic.Int64 // for tests

	bg     context.Context // the background loops; done on Leave and Close
	stopBg context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex // orders Leave and Close
	left   bool
	closed bool
}

// ErrClosed is returned by Leave after Close.
var ErrClosed = errors.New("peer: cluster member closed")

// New binds the gossip and gRPC addresses and creates this member, alone.
// Start serves the gRPC services and joins Config.Join in the background.
// On error nothing stays bound.
func New(cfg Config, deps Deps) (*Cluster, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{
		cfg:     cfg,
		deps:    deps,
		log:     deps.Logger,
		members: newMemberTable(cfg.NodeName, cfg.ForgetAfter),
		pool:    newConnPool(cfg.Secret),
	}
	c.client = &Client{members: c.members, pool: c.pool}
	c.events = &membershipEvents{
		self: cfg.NodeName, members: c.members, pool: c.pool, log: c.log,
		events: deps.Events, started: &c.started,
	}
	c.bg, c.stopBg = context.WithCancel(context.Background())

	bindIP, bindPort, _ := splitBind(cfg.GossipAddr) // validated
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	adv, err := advertiseIP(ctx, &cfg, bindIP, bindPort)
	cancel()
	if err != nil {
		c.stopBg()
		return nil, err
	}
	c.lis, err = net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		c.stopBg()
		return nil, fmt.Errorf("peer: gRPC address: %w", err)
	}
	c.grpcAddr = net.JoinHostPort(adv.String(), strconv.Itoa(c.lis.Addr().(*net.TCPAddr).Port))
	c.httpAddr = advertisedHTTP(cfg.HTTPAddr, adv)
	if err := checkMetaSize(c.httpAddr, c.grpcAddr); err != nil {
		c.stopBg()
		c.lis.Close()
		return nil, err
	}
	c.stats = &localStats{http: c.httpAddr, grpc: c.grpcAddr, dirty: make(chan struct{}, 1)}
	c.srv = c.newServer()

	mc := c.memberlistConfig(bindIP, bindPort, adv)
	c.ml, err = memberlist.Create(mc)
	if err != nil {
		c.stopBg()
		c.lis.Close()
		return nil, fmt.Errorf("peer: gossip: %w", err)
	}
	c.gossipPort = mc.BindPort // the port picked, if 0 was asked for
	port := strconv.Itoa(mc.BindPort)
	c.gossipAddr = net.JoinHostPort(adv.String(), port)
	c.selfAddrs = map[string]bool{
		c.gossipAddr:                            true,
		net.JoinHostPort(bindIP.String(), port): true,
	}
	return c, nil
}

// Client returns the client of the other members' services.
func (c *Cluster) Client() *Client { return c.client }

// memberlistConfig derives memberlist's configuration from Config.
func (c *Cluster) memberlistConfig(bind net.IP, port int, adv net.IP) *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	mc.DeadNodeReclaimTime = 30 * time.Second // a restarted member may come back at another address
	if c.cfg.Fast {
		mc = memberlist.DefaultLocalConfig()
		mc.ProbeTimeout = c.cfg.ProbeInterval / 2
		mc.SuspicionMult = 3
		mc.PushPullInterval = 2 * time.Second
		mc.TCPTimeout = time.Second
		mc.GossipToTheDeadTime = 2 * time.Second
		mc.DeadNodeReclaimTime = time.Second
	}
	mc.ProbeInterval = c.cfg.ProbeInterval
	mc.ProbeTimeout = min(mc.ProbeTimeout, c.cfg.ProbeInterval/2)
	mc.GossipInterval = c.cfg.GossipInterval
	mc.Name = c.cfg.NodeName
	mc.BindAddr, mc.BindPort = bind.String(), port
	mc.AdvertiseAddr, mc.AdvertisePort = adv.String(), port
	mc.Label = "atoll" // never merge with another memberlist cluster (Serf, Consul) on the same port
	if c.cfg.Secret != "" {
		mc.SecretKey = gossipKey(c.cfg.Secret)
	}
	mc.Delegate = gossipDelegate{events: c.events, stats: c.stats}
	mc.Events = gossipDelegate{events: c.events, stats: c.stats}
	mc.Logger = memberlistLogger(c.log)
	return mc
}

// advertisedHTTP fills an empty or unspecified host of addr with adv.
func advertisedHTTP(addr string, adv net.IP) string {
	host, port, _ := net.SplitHostPort(addr) // validated
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = adv.String()
	}
	return net.JoinHostPort(host, port)
}

// Start serves the gRPC services, announces stats, and joins Config.Join in
// the background until a join succeeds. Calls after the first do nothing.
func (c *Cluster) Start() {
	if !c.started.CompareAndSwap(false, true) {
		return
	}
	c.wg.Add(4)
	go func() {
		defer c.wg.Done()
		reconnectLoop(c.bg, c.ml, c.members, c.cfg.reconnectInterval(), c.log)
	}()
	go func() {
		defer c.wg.Done()
		if err := c.srv.Serve(c.lis); err != nil {
			c.log.Error("gRPC server stopped", "err", err)
		}
	}()
	go func() {
		defer c.wg.Done()
		c.stats.announce(c.bg.Done(), c.ml, c.cfg.StatsInterval, c.log)
	}()
	go func() {
		defer c.wg.Done()
		if len(c.cfg.Join) > 0 {
			c.joinLoop(c.bg)
		}
	}()
	c.log.Info("cluster member started", "member", c.cfg.NodeName,
		"gossip", c.gossipAddr, "grpc", c.grpcAddr, "http", c.httpAddr, "join", c.cfg.Join, "secret", c.cfg.Secret != "")
}

// Leave tells the other members that this one leaves, waiting up to twice
// timeout for the messages to go out; they then report it StateLeft rather
// than StateDead. It stops joining and announcing stats but keeps serving: hand
// off blobs before, call Close after. When every other member is gone or
// leaving too (a whole cluster stopping), nobody is left to hear it and the
// leave cannot fail.
func (c *Cluster) Leave(timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.left {
		return nil
	}
	c.left = true
	c.stopBg()
	c.AnnounceLeaving(timeout)
	if !c.members.staying() {
		// The broadcast may never complete: memberlist gossips only to
		// members it does not know left. Those leaving hear it or not.
		timeout = min(timeout, time.Second)
	}
	if err := c.ml.Leave(timeout); err != nil {
		if c.members.staying() {
			return fmt.Errorf("peer: leave: %w", err)
		}
		c.log.Debug("leave broadcast unconfirmed; no member stays", "err", err)
	}
	c.log.Info("left cluster", "member", c.cfg.NodeName)
	return nil
}

// Close stops gossip, then the gRPC server (letting calls in flight finish
// for a few seconds), and closes the connections to other members. Without
// Leave before, the others see this member die. Calls after the first
// return nil.
func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.stopBg()
	err := c.ml.Shutdown()
	c.stopServer(5 * time.Second)
	if !c.started.Load() {
		c.lis.Close() // Serve never took it
	}
	c.pool.close()
	c.wg.Wait()
	if err != nil {
		return fmt.Errorf("peer: gossip shutdown: %w", err)
	}
	return nil
}

// stopServer stops the gRPC server gracefully, or abruptly after timeout.
func (c *Cluster) stopServer(timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		c.srv.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		c.srv.Stop()
		<-done
	}
}
