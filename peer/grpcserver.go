package peer

import (
	"context"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/atollhq/atoll/peer/peerpb"
	"github.com/atollhq/atoll/storage/metalog"
)

// Wire limits.
const (
	// chunkSize is the data carried by one PutChunk.
	chunkSize = 1 << 20
	// maxMessage bounds every message, both ways: a metadata batch may
	// carry manifests of up to 4 MiB each.
	maxMessage = 64 << 20
	// maxBatchBytes is where an Apply request or a Since response stops
	// growing (it always holds at least one batch).
	maxBatchBytes = 16 << 20
)

// newServer builds the gRPC server of this member's services: a handler's
// panic fails its call only, and calls are checked for the token when the
// cluster has a secret.
func (c *Cluster) newServer() *grpc.Server {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxMessage),
		grpc.MaxSendMsgSize(maxMessage),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	rec := recovery{log: c.log} // recover.go
	opts = append(opts, grpc.ChainUnaryInterceptor(rec.unary), grpc.ChainStreamInterceptor(rec.stream))
	if c.cfg.Secret != "" {
		a := authorizer{token: []byte(grpcToken(c.cfg.Secret))}
		opts = append(opts, grpc.ChainUnaryInterceptor(a.unary), grpc.ChainStreamInterceptor(a.stream))
	}
	s := grpc.NewServer(opts...)
	peerpb.RegisterMetadataServer(s, metadataServer{md: c.deps.Metadata})
	registerSnapshots(s, c.deps.Metadata) // snapshot.go
	peerpb.RegisterBlobsServer(s, blobServer{blobs: c.deps.Blobs})
	return s
}

// Metadata is what the Metadata service serves: the local metadata log.
// All methods may be called concurrently.
type Metadata interface {
	// Apply applies batches of other members durably. A batch already
	// applied is skipped; a batch past a gap in its origin's log is
	// skipped too, to be fetched again by anti-entropy.
	Apply(ctx context.Context, batches []metalog.Batch) error
	// Vector returns what this member has applied.
	Vector() metalog.Vector
	// Since returns up to limit batches of origin with Seq > seq, in order.
	Since(origin string, seq uint64, limit int) ([]metalog.Batch, error)
}

// metadataServer serves the Metadata service over the local log.
type metadataServer struct {
	peerpb.UnimplementedMetadataServer
	md Metadata
}

var errNoMetadata = status.Error(codes.Unimplemented, "this member serves no metadata")

func (s metadataServer) Apply(ctx context.Context, req *peerpb.ApplyRequest) (*peerpb.ApplyResponse, error) {
	if s.md == nil {
		return nil, errNoMetadata
	}
	if err := s.md.Apply(ctx, batchesFromPB(req.GetBatches())); err != nil {
		return nil, toStatus(err)
	}
	return &peerpb.ApplyResponse{}, nil
}

func (s metadataServer) GetVector(context.Context, *peerpb.Empty) (*peerpb.Vector, error) {
	if s.md == nil {
		return nil, errNoMetadata
	}
	return vectorToPB(s.md.Vector()), nil
}

func (s metadataServer) Since(_ context.Context, req *peerpb.SinceRequest) (*peerpb.SinceResponse, error) {
	if s.md == nil {
		return nil, errNoMetadata
	}
	if req.GetLimit() < 0 {
		return nil, status.Error(codes.InvalidArgument, "negative limit")
	}
	bs, err := s.md.Since(req.GetOrigin(), req.GetSeq(), int(req.GetLimit()))
	if err != nil {
		return nil, toStatus(err)
	}
	pbs := batchesToPB(bs)
	size := 0
	for i, b := range pbs {
		if size += proto.Size(b); i > 0 && size > maxBatchBytes {
			pbs = pbs[:i] // the caller asks again from the last seq it got
			break
		}
	}
	return &peerpb.SinceResponse{Batches: pbs}, nil
}

// blobServer serves the Blobs service over Blobs.
type blobServer struct {
	peerpb.UnimplementedBlobsServer
	blobs Blobs
}

var errNoBlobs = status.Error(codes.Unimplemented, "this member serves no blobs")

func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", status.Errorf(codes.InvalidArgument, "digest %q: %v", s, err)
	}
	return d, nil
}

func (s blobServer) Has(ctx context.Context, req *peerpb.HasRequest) (*peerpb.HasResponse, error) {
	if s.blobs == nil {
		return nil, errNoBlobs
	}
	ds := make([]digest.Digest, len(req.GetDigests()))
	for i, str := range req.GetDigests() {
		d, err := parseDigest(str)
		if err != nil {
			return nil, err
		}
		ds[i] = d
	}
	has, err := s.blobs.Has(ctx, ds)
	if err != nil {
		return nil, toStatus(err)
	}
	if len(has) != len(ds) {
		return nil, status.Errorf(codes.Internal, "blob store answered %d of %d digests", len(has), len(ds))
	}
	return &peerpb.HasResponse{Present: has}, nil
}

func (s blobServer) Put(stream grpc.ClientStreamingServer[peerpb.PutChunk, peerpb.PutResponse]) error {
	if s.blobs == nil {
		return errNoBlobs
	}
	first, err := stream.Recv()
	if err == io.EOF {
		return status.Error(codes.InvalidArgument, "put without a chunk")
	} else if err != nil {
		return err
	}
	d, err := parseDigest(first.GetDigest())
	if err != nil {
		return err
	}
	if first.GetSize() < 0 {
		return status.Errorf(codes.InvalidArgument, "negative size %d", first.GetSize())
	}
	r := &putReader{stream: stream, buf: first.GetData(), size: first.GetSize()}
	if err := s.blobs.Put(stream.Context(), d, r.size, r); err != nil {
		return toStatus(err)
	}
	if r.read == r.size { // the sender must have sent nothing more
		if _, err := r.Read(make([]byte, 1)); err != io.EOF {
			return toStatus(err)
		}
	}
	return stream.SendAndClose(&peerpb.PutResponse{})
}

// putReader reads the data of a Put stream, failing if the sender sends
// more or fewer than size bytes.
type putReader struct {
	stream     grpc.ClientStreamingServer[peerpb.PutChunk, peerpb.PutResponse]
	buf        []byte
	size, read int64
	err        error
}

func (r *putReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		chunk, err := r.stream.Recv()
		switch {
		case err == io.EOF && r.read < r.size:
			r.err = status.Errorf(codes.InvalidArgument, "blob stream ended after %d of %d bytes", r.read, r.size)
		case err != nil:
			r.err = err // io.EOF, or the status of a broken stream
		default:
			r.buf = chunk.GetData()
		}
	}
	if int64(len(r.buf)) > r.size-r.read {
		r.buf, r.err = nil, status.Errorf(codes.InvalidArgument, "blob stream longer than its size %d", r.size)
		return 0, r.err
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	r.read += int64(n)
	return n, nil
}
