package peer

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/atollhq/atoll/peer/peerpb"
	"github.com/atollhq/atoll/storage/metalog"
)

//go:generate protoc --proto_path=. --go_out=peerpb --go_opt=paths=source_relative --go-grpc_out=peerpb --go-grpc_opt=paths=source_relative snapshot.proto

// SnapshotSource is the optional capability of Deps.Metadata that the
// Snapshots service serves (storage/metadb's Store has it): a member
// whose metadata lacks it answers Unimplemented.
type SnapshotSource interface {
	// SnapshotChunk returns up to limit entries with keys after after;
	// the first chunk carries the vector the state covers.
	SnapshotChunk(after string, limit int) (metalog.Chunk, error)
}

// maxChunkEntries bounds the limit a caller may ask for.
const maxChunkEntries = 1 << 16

// registerSnapshots registers the Snapshots service over md.
func registerSnapshots(s *grpc.Server, md Metadata) {
	src, _ := md.(SnapshotSource)
	peerpb.RegisterSnapshotsServer(s, snapshotServer{src: src})
}

// snapshotServer serves the Snapshots service.
type snapshotServer struct {
	peerpb.UnimplementedSnapshotsServer
	src SnapshotSource // nil: Unimplemented
}

func (s snapshotServer) Chunk(_ context.Context, req *peerpb.ChunkRequest) (*peerpb.ChunkResponse, error) {
	if s.src == nil {
		return nil, status.Error(codes.Unimplemented, "this member serves no metadata snapshot")
	}
	if req.GetLimit() <= 0 || req.GetLimit() > maxChunkEntries {
		return nil, status.Errorf(codes.InvalidArgument, "limit %d outside 1..%d", req.GetLimit(), maxChunkEntries)
	}
	c, err := s.src.SnapshotChunk(req.GetAfter(), int(req.GetLimit()))
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &peerpb.ChunkResponse{Entries: opsToPB(c.Entries), Next: c.Next}
	if c.Vector != nil {
		resp.Vector = vectorToPB(c.Vector)
	}
	return resp, nil
}

// Snapshot returns a chunk of member's metadata snapshot: up to limit
// entries after the key after (the Snapshots service's Chunk on member).
// The first chunk (after "") carries the vector the snapshot covers.
func (c *Client) Snapshot(ctx context.Context, member, after string, limit int) (metalog.Chunk, error) {
	cc, err := c.conn(member)
	if err != nil {
		return metalog.Chunk{}, err
	}
	resp, err := peerpb.NewSnapshotsClient(cc).Chunk(ctx, &peerpb.ChunkRequest{After: after, Limit: int64(limit)})
	if err != nil {
		return metalog.Chunk{}, fromStatus(ctx, member, "snapshot", err)
	}
	out := metalog.Chunk{Entries: opsFromPB(resp.GetEntries()), Next: resp.GetNext()}
	if resp.GetVector() != nil {
		out.Vector = vectorFromPB(resp.GetVector())
	}
	return out, nil
}

func opsToPB(ops []metalog.Op) []*peerpb.Op {
	out := make([]*peerpb.Op, len(ops))
	for i, op := range ops {
		out[i] = &peerpb.Op{Key: op.Key, Value: op.Value, Deleted: op.Deleted, Stamp: op.Stamp, Origin: op.Origin}
	}
	return out
}

func opsFromPB(ops []*peerpb.Op) []metalog.Op {
	out := make([]metalog.Op, len(ops))
	for i, op := range ops {
		out[i] = metalog.Op{Key: op.GetKey(), Value: op.GetValue(), Deleted: op.GetDeleted(), Stamp: op.GetStamp(), Origin: op.GetOrigin()}
	}
	return out
}
