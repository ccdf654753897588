package peer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"

	"github.com/atollhq/atoll/peer/peerpb"
	"github.com/atollhq/atoll/storage/metalog"
)

// connPool holds one gRPC connection per member, made on first use from the
// member's advertised gRPC address. observe drops a member's connection when
// the member dies, leaves or moves.
type connPool struct {
	opts []grpc.DialOption

	mu     sync.Mutex
	conns  map[string]*pooledConn // by member name
	closed bool
}

type pooledConn struct {
	addr string
	cc   *grpc.ClientConn
}

func newConnPool(secret string) *connPool {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		// Reconnect fast: a member restarting at the same address is back
		// within seconds, not after gRPC's default backoff of up to 2 min.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	if secret != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCredentials(grpcToken(secret))))
	}
	return &connPool{opts: opts, conns: make(map[string]*pooledConn)}
}

// get returns the connection to member name at addr, replacing one to
// another address.
func (p *connPool) get(name, addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if pc, ok := p.conns[name]; ok {
		if pc.addr == addr {
			return pc.cc, nil
		}
		go pc.cc.Close()
	}
	cc, err := grpc.NewClient(addr, p.opts...) // connects on first call
	if err != nil {
		return nil, fmt.Errorf("peer %s: gRPC address %q: %w", name, addr, err)
	}
	p.conns[name] = &pooledConn{addr: addr, cc: cc}
	return cc, nil
}

// drop closes the connection to member name, if any, without waiting.
// Calls in flight on it fail.
func (p *connPool) drop(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pc, ok := p.conns[name]; ok {
		delete(p.conns, name)
		go pc.cc.Close()
	}
}

func (p *connPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for name, pc := range p.conns {
		pc.cc.Close()
		delete(p.conns, name)
	}
}

// Client calls the services of the other members, addressed by member
// name, over one pooled connection per member: the Metadata service
// (Apply, Vector, Since), Snapshots (Snapshot) and Blobs (Has, PutBlob,
// AppendReplica, FinishReplica). A member must be alive and advertise a
// gRPC address; otherwise a call fails with ErrMemberUnknown,
// ErrMemberDown or ErrUnreachable. Its methods may be called concurrently.
type Client struct {
	members *memberTable
	pool    *connPool
}

// conn returns the connection to an alive member.
func (c *Client) conn(member string) (*grpc.ClientConn, error) {
	m, ok := c.members.get(member)
	switch {
	case !ok:
		return nil, fmt.Errorf("peer %s: %w", member, ErrMemberUnknown)
	case m.State != StateAlive:
		return nil, fmt.Errorf("peer %s: %w: %s", member, ErrMemberDown, m.State)
	case m.GRPC == "":
		return nil, fmt.Errorf("peer %s: %w: it advertises no gRPC address", member, ErrUnreachable)
	}
	return c.pool.get(member, m.GRPC)
}

// Apply sends batches to member, which applies them (Metadata's
// Apply on member). Large lists go as several calls of at most about 16 MiB, in order.
func (c *Client) Apply(ctx context.Context, member string, batches []metalog.Batch) error {
	cc, err := c.conn(member)
	if err != nil {
		return err
	}
	client := peerpb.NewMetadataClient(cc)
	pbs := batchesToPB(batches)
	for len(pbs) > 0 {
		n, size := 1, proto.Size(pbs[0])
		for n < len(pbs) && size+proto.Size(pbs[n]) <= maxBatchBytes {
			size += proto.Size(pbs[n])
			n++
		}
		if _, err := client.Apply(ctx, &peerpb.ApplyRequest{Batches: pbs[:n]}); err != nil {
			return fromStatus(ctx, member, "apply", err)
		}
		pbs = pbs[n:]
	}
	return nil
}

// Vector returns what member has applied (Metadata's Vector).
func (c *Client) Vector(ctx context.Context, member string) (metalog.Vector, error) {
	cc, err := c.conn(member)
	if err != nil {
		return nil, err
	}
	v, err := peerpb.NewMetadataClient(cc).GetVector(ctx, &peerpb.Empty{})
	if err != nil {
		return nil, fromStatus(ctx, member, "vector", err)
	}
	return vectorFromPB(v), nil
}

// Since returns up to limit batches of origin with Seq > seq from member's
// log, in order (Metadata's Since). The member may return fewer
// to keep the response small; ask again from the last Seq received.
func (c *Client) Since(ctx context.Context, member, origin string, seq uint64, limit int) ([]metalog.Batch, error) {
	cc, err := c.conn(member)
	if err != nil {
		return nil, err
	}
	resp, err := peerpb.NewMetadataClient(cc).Since(ctx, &peerpb.SinceRequest{Origin: origin, Seq: seq, Limit: int64(limit)})
	if err != nil {
		return nil, fromStatus(ctx, member, "since", err)
	}
	return batchesFromPB(resp.GetBatches()), nil
}

// Has reports, for each digest in order, whether member holds the blob.
func (c *Client) Has(ctx context.Context, member string, ds []digest.Digest) ([]bool, error) {
	cc, err := c.conn(member)
	if err != nil {
		return nil, err
	}
	req := &peerpb.HasRequest{Digests: make([]string, len(ds))}
	for i, d := range ds {
		req.Digests[i] = d.String()
	}
	resp, err := peerpb.NewBlobsClient(cc).Has(ctx, req)
	if err != nil {
		return nil, fromStatus(ctx, member, "has", err)
	}
	if len(resp.GetPresent()) != len(ds) {
		return nil, fmt.Errorf("peer %s: has: answered %d of %d digests", member, len(resp.GetPresent()), len(ds))
	}
	return resp.GetPresent(), nil
}
