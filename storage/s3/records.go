package s3

import (
	"bytes"
	"context"
	"io"

	"github.com/minio/minio-go/v7"
)

// records are small named objects the store keeps for its users
// (<root>/records/<name>, see keys.record), such as what an import has
// done. A record that does not exist is an error wrapping fs.ErrNotExist.
// Its methods may be called concurrently.
type records struct {
	*bucket
}

// PutRecord stores b as the record name (keys.record), whole or not at
// all.
func (s *records) PutRecord(ctx context.Context, name string, b []byte) error {
	_, err := s.core.PutObject(ctx, s.cfg.Bucket, s.keys.record(name), bytes.NewReader(b), int64(len(b)), "", "", putOptions(crc32c(b)))
	return wrap("s3 record "+name, err)
}

// Record reads the record name.
func (s *records) Record(ctx context.Context, name string) ([]byte, error) {
	body, _, _, err := s.core.GetObject(ctx, s.cfg.Bucket, s.keys.record(name), minio.GetObjectOptions{})
	if err != nil {
		return nil, keyErr("record "+name, err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, keyErr("record "+name, err)
	}
	return b, nil
}
