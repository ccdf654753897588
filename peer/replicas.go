package peer

import (
	"context"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/atollhq/atoll/peer/peerpb"
)

// Replicas is the optional capability of Blobs that keeps replicas of
// uploads other members receive from clients (Blobs.Append, Blobs.Finish):
// the bytes reach this member as the client sends them, so the final PUT
// commits everywhere at once instead of copying the blob then. Its methods
// may be called concurrently, for different ids.
type Replicas interface {
	// AppendReplica appends what r yields to replica id, resumed from
	// state (nil when new), and returns the state after those bytes,
	// durable, and the replica's size. With forward non-empty the bytes
	// also go on, as they arrive, to a replica on each of those members (a
	// chain), and the state covers those replicas too; an implementation
	// that cannot forward keeps its own replica only, and its
	// FinishReplica then answers 1.
	AppendReplica(ctx context.Context, id string, state []byte, forward []string, r io.Reader) (next []byte, size int64, err error)
	// FinishReplica commits replica id, at state, as blob d after
	// verifying it (storage.ErrDigestMismatch if it does not hash to d),
	// or discards it when d is "". It returns how many members hold blob
	// d durably after a commit: 1, or more when the replica forwarded.
	FinishReplica(ctx context.Context, id string, state []byte, d digest.Digest) (copies int, err error)
}

var errNoReplicas = status.Error(codes.Unimplemented, "this member keeps no upload replicas")

func (s blobServer) replicas() (Replicas, bool) {
	r, ok := s.blobs.(Replicas)
	return r, ok
}

func (s blobServer) Append(stream grpc.ClientStreamingServer[peerpb.AppendChunk, peerpb.AppendResponse]) error {
	reps, ok := s.replicas()
	if !ok {
		return errNoReplicas
	}
	first, err := stream.Recv()
	if err == io.EOF {
		return status.Error(codes.InvalidArgument, "append without a chunk")
	} else if err != nil {
		return err
	}
	if first.GetId() == "" {
		return status.Error(codes.InvalidArgument, "append without an upload id")
	}
	r := &appendReader{stream: stream, buf: first.GetData()}
	next, size, err := reps.AppendReplica(stream.Context(), first.GetId(), first.GetState(), first.GetForward(), r)
	if err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(&peerpb.AppendResponse{State: next, Size: size})
}

func (s blobServer) Finish(ctx context.Context, req *peerpb.FinishRequest) (*peerpb.FinishResponse, error) {
	reps, ok := s.replicas()
	if !ok {
		return nil, errNoReplicas
	}
	var d digest.Digest
	if req.GetDigest() != "" {
		var err error
		if d, err = parseDigest(req.GetDigest()); err != nil {
			return nil, err
		}
	}
	copies, err := reps.FinishReplica(ctx, req.GetId(), req.GetState(), d)
	if err != nil {
		return nil, toStatus(err)
	}
	return &peerpb.FinishResponse{Copies: int32(copies)}, nil
}

// appendReader reads the data of an Append stream until its sender closes
// it.
type appendReader struct {
	stream grpc.ClientStreamingServer[peerpb.AppendChunk, peerpb.AppendResponse]
	buf    []byte
	err    error
}

// WriteTo writes each chunk's data to w whole (io.Copy uses it), so the
// replica is written and hashed in the sender's chunks.
func (r *appendReader) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for {
		if len(r.buf) > 0 {
			k, err := w.Write(r.buf)
			n += int64(k)
			r.buf = r.buf[k:]
			if err != nil {
				return n, err
			}
			continue
		}
		if r.err != nil {
			if r.err == io.EOF {
				return n, nil
			}
			return n, r.err
		}
		chunk, err := r.stream.Recv()
		if err != nil {
			r.err = err // io.EOF, or the status of a broken stream
			continue
		}
		r.buf = chunk.GetData()
	}
}

func (r *appendReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		chunk, err := r.stream.Recv()
		if err != nil {
			r.err = err // io.EOF, or the status of a broken stream
			continue
		}
		r.buf = chunk.GetData()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// ChunkSource is an optional capability of the reader AppendReplica
// sends: it yields the bytes in chunks the caller may keep (nobody writes
// them again), each sent as one message as it is, without a copy. A chunk
// must not exceed the messages' limit (maxMessage).
type ChunkSource interface {
	// NextChunk returns the next chunk, or io.EOF after the last.
	NextChunk() ([]byte, error)
}

// AppendReplica streams what r yields to member's replica id of an upload,
// resumed from state, and returns the replica's state after them, durable
// on member, and its size; member passes them on to the members of
// forward (see Replicas). A ChunkSource's chunks go as they are, any other
// reader's bytes in 1 MiB chunks. If r fails the call is aborted and
// member keeps the replica as it was at state.
func (c *Client) AppendReplica(ctx context.Context, member, id string, state []byte, forward []string, r io.Reader) ([]byte, int64, error) {
	cc, err := c.conn(member)
	if err != nil {
		return nil, 0, err
	}
	ctx, cancel := context.WithCancel(ctx) // aborts the stream on early return
	defer cancel()
	op := "append to upload " + id
	stream, err := peerpb.NewBlobsClient(cc).Append(ctx)
	if err != nil {
		return nil, 0, fromStatus(ctx, member, op, err)
	}
	next := chunksOf(r)
	first := &peerpb.AppendChunk{Id: id, State: state, Forward: forward}
	for sent := int64(0); ; {
		buf, rerr := next()
		if rerr != nil && rerr != io.EOF {
			return nil, 0, fmt.Errorf("peer %s: %s: reading after %d bytes: %w", member, op, sent+int64(len(buf)), rerr)
		}
		if len(buf) > 0 || first != nil {
			msg := &peerpb.AppendChunk{Data: buf}
			if first != nil {
				first.Data, msg, first = buf, first, nil
			}
			if err := stream.Send(msg); err == io.EOF {
				break // member ended the call early; CloseAndRecv has its status
			} else if err != nil {
				return nil, 0, fromStatus(ctx, member, op, err)
			}
			sent += int64(len(buf))
		}
		if rerr != nil {
			break
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, 0, fromStatus(ctx, member, op, err)
	}
	return resp.GetState(), resp.GetSize(), nil
}

// chunksOf returns the chunks of r: a ChunkSource's own, else fresh
// buffers of up to chunkSize (gRPC may hold a sent message: never reused).
// A chunk may come with io.EOF.
func chunksOf(r io.Reader) func() ([]byte, error) {
	if cs, ok := r.(ChunkSource); ok {
		return cs.NextChunk
	}
	return func() ([]byte, error) {
		buf := make([]byte, chunkSize)
		n, err := io.ReadFull(r, buf)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		return buf[:n], err
	}
}

// FinishReplica commits member's replica id of an upload, at state, as
// blob d, which member verifies; with d "" it discards the replica. It
// returns how many members hold d durably after the commit, as member
// counts them: at least 1 (a member that predates the count answers 0, and
// it kept its own copy only).
func (c *Client) FinishReplica(ctx context.Context, member, id string, state []byte, d digest.Digest) (int, error) {
	cc, err := c.conn(member)
	if err != nil {
		return 0, err
	}
	req := &peerpb.FinishRequest{Id: id, State: state, Digest: d.String()}
	resp, err := peerpb.NewBlobsClient(cc).Finish(ctx, req)
	if err != nil {
		return 0, fromStatus(ctx, member, "finish upload "+id, err)
	}
	return max(1, int(resp.GetCopies())), nil
}

// ServedBlobs returns the Blobs this member serves the others.
func (c *Cluster) ServedBlobs() Blobs { return c.deps.Blobs }
