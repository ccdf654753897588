package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"
)

// firstWindow bounds the first GET after a Seek away from the start: a
// Range request (http.ServeContent seeks, then reads the range) fetches at
// most this much plus what it reads, while reading on from there fetches
// the rest of the object in one request.
const firstWindow = 1 << 20

// blob is an open blob: storage.Blob over ranged GETs of one object. It is
// used by one goroutine at a time.
type blob struct {
	bkt  *bucket
	ctx  context.Context
	d    digest.Digest
	size int64
	mod  time.Time

	off  int64         // where the next Read starts
	body io.ReadCloser // an open GET of [bodyOff, bodyEnd), or nil
	// bodyOff is the offset of the next byte body yields.
	bodyOff, bodyEnd int64
}

func (b *blob) Size() int64        { return b.size }
func (b *blob) ModTime() time.Time { return b.mod }

func (b *blob) Read(p []byte) (int, error) {
	if b.off >= b.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.body == nil || b.bodyOff != b.off || b.bodyOff >= b.bodyEnd {
		if err := b.fetch(); err != nil {
			return 0, err
		}
	}
	if left := b.bodyEnd - b.bodyOff; int64(len(p)) > left {
		p = p[:left]
	}
	n, err := b.body.Read(p)
	b.off += int64(n)
	b.bodyOff += int64(n)
	if errors.Is(err, io.EOF) {
		err = nil // this range is done, the object may not be
		if b.bodyOff < b.bodyEnd {
			err = wrap("s3 read blob "+b.d.String(), io.ErrUnexpectedEOF)
		}
	} else if err != nil {
		err = wrap("s3 read blob "+b.d.String(), err)
	}
	if err != nil || b.bodyOff >= b.bodyEnd {
		b.closeBody()
	}
	if n > 0 {
		return n, nil // after an error, the next Read fetches again
	}
	return n, err
}

// fetch opens a GET at b.off: to the end of the object when reading from
// the start or on from where the last GET ended, else a window.
func (b *blob) fetch() error {
	sequential := b.off == 0 || (b.body == nil && b.bodyEnd == b.off)
	b.closeBody()
	end := b.size
	if !sequential {
		end = min(b.size, b.off+firstWindow)
	}
	opts := minio.GetObjectOptions{}
	if err := opts.SetRange(b.off, end-1); err != nil {
		return fmt.Errorf("s3 read blob %s: %w", b.d, err)
	}
	body, _, _, err := b.bkt.core.GetObject(b.ctx, b.bkt.cfg.Bucket, b.bkt.keys.blob(b.d), opts)
	if err != nil {
		return blobErr(b.d, err)
	}
	b.body, b.bodyOff, b.bodyEnd = body, b.off, end
	return nil
}

func (b *blob) closeBody() {
	if b.body != nil {
		_ = b.body.Close()
		b.body = nil
	}
}

func (b *blob) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += b.off
	case io.SeekEnd:
		offset += b.size
	default:
		return 0, fmt.Errorf("seek blob %s: invalid whence %d", b.d, whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("seek blob %s: negative position %d", b.d, offset)
	}
	b.off = offset
	return offset, nil
}

func (b *blob) Close() error {
	b.closeBody()
	return nil
}
