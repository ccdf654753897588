package peer

import (
	"context"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/peer/peerpb"
)

// PutBlob streams size bytes read from r to member as blob d, in 1 MiB
// chunks, and returns once member stored them durably and verified the
// digest: storage.ErrDigestMismatch if they do not hash to d. If r ends
// before size bytes the call is aborted and member stores nothing.
func (c *Client) PutBlob(ctx context.Context, member string, d digest.Digest, size int64, r io.Reader) error {
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
		return fromStatus(ctx, member, op, err)
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
			return fromStatus(ctx, member, op, err)
		}
		if sent += int64(n); sent == size {
			break
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		return fromStatus(ctx, member, op, err)
	}
	return nil
}
