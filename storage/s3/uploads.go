package s3

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// The S3 calls of uploads. Parts and tails travel with an unsigned payload
// and a CRC32C checksum that S3 verifies: integrity on the wire without a
// second SHA-256 pass over the bytes (the one that names the blob is
// enough CPU for a push).

// cleanupTimeout bounds the best-effort removal of an upload's leftovers.
const cleanupTimeout = 30 * time.Second

// copyPartSize is the largest blob copied with one CopyObject; larger ones
// are copied in parts of this size.
const copyPartSize = 1 << 30

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32c is the x-amz-checksum-crc32c value of b.
func crc32c(b []byte) string {
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.Checksum(b, castagnoli))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// putOptions are the options of a PUT of b.
func putOptions(b []byte) minio.PutObjectOptions {
	return minio.PutObjectOptions{
		DisableContentSha256: true,
		UserMetadata:         map[string]string{"X-Amz-Checksum-Crc32c": crc32c(b)},
	}
}

func (s *Store) getBuf() []byte { return (*s.parts.Get().(*[]byte))[:0] }

func (s *Store) putBuf(b []byte) {
	if cap(b) == int(s.cfg.PartSize) {
		b = b[:0]
		s.parts.Put(&b)
	}
}

// newMultipart starts a multipart upload for upload id, marking it first
// with the "started" object (see keys).
func (s *Store) newMultipart(ctx context.Context, id string) (string, error) {
	_, err := s.core.PutObject(ctx, s.cfg.Bucket, s.keys.uploadStarted(id), bytes.NewReader(nil), 0, "", "", putOptions(nil))
	if err != nil {
		return "", wrap("s3 start upload "+id, err)
	}
	opts := minio.PutObjectOptions{UserMetadata: map[string]string{"X-Amz-Checksum-Algorithm": "CRC32C"}}
	uploadID, err := s.core.NewMultipartUpload(ctx, s.cfg.Bucket, s.keys.uploadData(id), opts)
	if err != nil {
		return "", wrap("s3 start upload "+id, err)
	}
	return uploadID, nil
}

func (s *Store) sendPart(ctx context.Context, id, uploadID string, number int, b []byte) (part, error) {
	sum := crc32c(b)
	opts := minio.PutObjectPartOptions{
		DisableContentSha256: true,
		CustomHeader: http.Header{
			"X-Amz-Checksum-Crc32c":    {sum},
			"X-Amz-Checksum-Algorithm": {"CRC32C"},
		},
	}
	p, err := s.core.PutObjectPart(ctx, s.cfg.Bucket, s.keys.uploadData(id), uploadID, number, bytes.NewReader(b), int64(len(b)), opts)
	if err != nil {
		return part{}, uploadErr(id, err)
	}
	return part{Number: number, Size: int64(len(b)), ETag: p.ETag, CRC32C: sum}, nil
}

func (s *Store) completeMultipart(ctx context.Context, id string, st writerState) error {
	parts := make([]minio.CompletePart, len(st.Parts))
	for i, p := range st.Parts {
		parts[i] = minio.CompletePart{PartNumber: p.Number, ETag: p.ETag, ChecksumCRC32C: p.CRC32C}
	}
	_, err := s.core.CompleteMultipartUpload(ctx, s.cfg.Bucket, s.keys.uploadData(id), st.UploadID, parts, minio.PutObjectOptions{})
	return uploadErr(id, err)
}

// abortMultipart aborts a multipart upload; one already gone is no error.
func (s *Store) abortMultipart(ctx context.Context, id, uploadID string) error {
	err := s.core.AbortMultipartUpload(ctx, s.cfg.Bucket, s.keys.uploadData(id), uploadID)
	if err != nil && !isNotFound(err) {
		return wrap("s3 abort upload "+id, err)
	}
	return nil
}

func (s *Store) putTail(ctx context.Context, id string, gen int, b []byte) error {
	_, err := s.core.PutObject(ctx, s.cfg.Bucket, s.keys.uploadTail(id, gen), bytes.NewReader(b), int64(len(b)), "", "", putOptions(b))
	return wrap("s3 record upload "+id, err)
}

func (s *Store) removeTail(ctx context.Context, id string, gen int) {
	_ = s.client.RemoveObject(ctx, s.cfg.Bucket, s.keys.uploadTail(id, gen), minio.RemoveObjectOptions{})
}

// readTail reads the tail st names into a buffer that writes may extend.
func (s *Store) readTail(ctx context.Context, id string, st writerState) ([]byte, error) {
	size := st.Size
	for _, p := range st.Parts {
		size -= p.Size
	}
	if st.Gen < 1 || size < 0 || size >= s.cfg.PartSize || (st.UploadID == "") != (len(st.Parts) == 0) {
		return nil, fmt.Errorf("upload %s: invalid state: %w", id, storage.ErrUploadUnknown)
	}
	body, err := s.getObject(ctx, s.keys.uploadTail(id, st.Gen))
	if err != nil {
		return nil, uploadErr(id, err)
	}
	defer body.Close()
	var b []byte
	if size > smallTail || st.UploadID != "" {
		b = s.getBuf()[:size]
	} else {
		b = make([]byte, size)
	}
	if _, err := io.ReadFull(body, b); err != nil {
		s.putBuf(b)
		return nil, wrap("s3 read upload "+id, err)
	}
	if n, _ := body.Read(make([]byte, 1)); n > 0 {
		s.putBuf(b)
		return nil, fmt.Errorf("upload %s: tail longer than its state: %w", id, storage.ErrUploadUnknown)
	}
	return b, nil
}

// removeUpload removes every object under the upload's prefix.
func (s *Store) removeUpload(ctx context.Context, id string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the listing on an early return
	opts := minio.ListObjectsOptions{Prefix: s.keys.upload(id), Recursive: true}
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, opts) {
		if obj.Err != nil {
			return wrap("s3 remove upload "+id, obj.Err)
		}
		if err := s.client.RemoveObject(ctx, s.cfg.Bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil {
			return wrap("s3 remove upload "+id, err)
		}
	}
	return nil
}

// putBlob stores b as blob d.
func (s *Store) putBlob(ctx context.Context, d digest.Digest, b []byte) error {
	_, err := s.core.PutObject(ctx, s.cfg.Bucket, s.keys.blob(d), bytes.NewReader(b), int64(len(b)), "", "", putOptions(b))
	return wrap("s3 store blob "+d.String(), err)
}

// copyToBlob copies the completed upload id to blob d.
func (s *Store) copyToBlob(ctx context.Context, id string, d digest.Digest) error {
	dst := minio.CopyDestOptions{Bucket: s.cfg.Bucket, Object: s.keys.blob(d), PartSize: copyPartSize}
	src := minio.CopySrcOptions{Bucket: s.cfg.Bucket, Object: s.keys.uploadData(id)}
	if _, err := s.client.ComposeObject(ctx, dst, src); err != nil {
		return wrap("s3 store blob "+d.String(), err)
	}
	return nil
}

// exists reports whether blob d is stored.
func (s *Store) exists(ctx context.Context, d digest.Digest) (bool, error) {
	_, err := s.Stat(ctx, d)
	if errors.Is(err, storage.ErrBlobUnknown) {
		return false, nil
	}
	return err == nil, err
}

func (s *Store) getObject(ctx context.Context, key string) (io.ReadCloser, error) {
	body, _, _, err := s.core.GetObject(ctx, s.cfg.Bucket, key, minio.GetObjectOptions{})
	return body, err
}

// uploadErr maps a missing upload or tail to ErrUploadUnknown.
func uploadErr(id string, err error) error {
	if err == nil {
		return nil
	}
	if isNotFound(err) {
		return fmt.Errorf("upload %s: %w", id, storage.ErrUploadUnknown)
	}
	return wrap("s3 upload "+id, err)
}
