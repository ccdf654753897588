package peer

import (
	"context"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	"google.golang.org/grpc"

	"github.com/atollhq/atoll/peer/peerpb"
)

// PutBlob streams size bytes read from r to member as blob d, in 1 MiB
// chunks, and returns once member stored them durably and verified the
// digest: storage.ErrDigestMismatch if they do not hash to d. If r ends
// before size bytes the call is aborted and member stores nothing.
func (c *Cluster) PutBlob(ctx context.Context, member string, d digest.Digest, size int64, r io.Reader) error {
	if size < 0 {
		return fmt.Errorf("peer %s: put blob %s: negative size %d", member, d, size)
	}
	cc, err := c.conn(member)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx) // aborts the stream on early return
	defer cancel()
	op := "put blob " + d.String()
	stream, err := peerpb.NewBlobsClient(cc).Put(ctx)
	if err != nil {
		return fromStatus(member, op, err)
	}
	for sent := int64(0); ; {
		buf := make([]byte, min(chunkSize, size-sent)) // gRPC may hold a sent message: never reuse
		n, err := io.ReadFull(r, buf)
		if err != nil {
			return fmt.Errorf("peer %s: %s: reading after %d of %d bytes: %w", member, op, sent+int64(n), size, err)
		}
		msg := &peerpb.PutChunk{Data: buf}
		if sent == 0 {
			msg.Digest, msg.Size = d.String(), size
		}
		if err := stream.Send(msg); err == io.EOF {
			break // member ended the call early; CloseAndRecv has its status
		} else if err != nil {
			return fromStatus(member, op, err)
		}
		if sent += int64(n); sent == size {
			break
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		return fromStatus(member, op, err)
	}
	return nil
}

// GetBlob streams blob d from member: a reader over its bytes, and its
// size. The reader fails with io.ErrUnexpectedEOF if the stream ends short;
// it does not verify the digest (the store the bytes go to does). The
// caller closes it; closing early aborts the transfer. storage.ErrBlobUnknown
// if member does not hold d.
func (c *Cluster) GetBlob(ctx context.Context, member string, d digest.Digest) (io.ReadCloser, int64, error) {
	cc, err := c.conn(member)
	if err != nil {
		return nil, 0, err
	}
	op := "get blob " + d.String()
	ctx, cancel := context.WithCancel(ctx)
	stream, err := peerpb.NewBlobsClient(cc).Get(ctx, &peerpb.GetRequest{Digest: d.String()})
	if err != nil {
		cancel()
		return nil, 0, fromStatus(member, op, err)
	}
	first, err := stream.Recv()
	if err != nil {
		cancel()
		if err == io.EOF {
			return nil, 0, fmt.Errorf("peer %s: %s: empty response: %w", member, op, io.ErrUnexpectedEOF)
		}
		return nil, 0, fromStatus(member, op, err)
	}
	r := &blobReader{member: member, op: op, stream: stream, cancel: cancel, buf: first.GetData(), size: first.GetSize()}
	r.got = int64(len(r.buf))
	if r.got > r.size {
		r.Close()
		return nil, 0, fmt.Errorf("peer %s: %s: more bytes than its size %d", member, op, r.size)
	}
	return r, r.size, nil
}

// blobReader reads the chunks of a Get stream.
type blobReader struct {
	member, op string
	stream     grpc.ServerStreamingClient[peerpb.GetChunk]
	cancel     context.CancelFunc
	buf        []byte
	size, got  int64
	err        error
}

func (r *blobReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		chunk, err := r.stream.Recv()
		switch {
		case err == io.EOF && r.got < r.size:
			r.err = fmt.Errorf("peer %s: %s: stream ended after %d of %d bytes: %w", r.member, r.op, r.got, r.size, io.ErrUnexpectedEOF)
		case err == io.EOF:
			r.err = io.EOF
		case err != nil:
			r.err = fromStatus(r.member, r.op, err)
		case r.got+int64(len(chunk.GetData())) > r.size:
			r.err = fmt.Errorf("peer %s: %s: more bytes than its size %d", r.member, r.op, r.size)
		default:
			r.buf = chunk.GetData()
			r.got += int64(len(r.buf))
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Close aborts the stream if it is not done.
func (r *blobReader) Close() error {
	r.cancel()
	return nil
}
