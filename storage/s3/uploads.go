package s3

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
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
// are copied in parts of this size, copyThreads at a time.
const (
	copyPartSize = 64 << 20
	copyThreads  = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32c is the x-amz-checksum-crc32c value of b.
func crc32c(b []byte) string { return checksumValue(crc32.Checksum(b, castagnoli)) }

// checksumValue is the x-amz-checksum-crc32c value of a CRC32C.
func checksumValue(sum uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], sum)
	return base64.StdEncoding.EncodeToString(b[:])
}

// putOptions are the options of a PUT of bytes whose crc32c is sum.
func putOptions(sum string) minio.PutObjectOptions {
	return minio.PutObjectOptions{
		DisableContentSha256: true,
		UserMetadata:         map[string]string{"X-Amz-Checksum-Crc32c": sum},
	}
}

// uploads are the S3 calls of an upload's bookkeeping: its multipart
// upload and parts, its tail objects, and the removal of what it left. All
// methods may be called concurrently.
type uploads struct {
	*bucket
	parts *partPool
}

// newMultipart starts a multipart upload for upload id, marking it first
// with the "started" object (see keys).
func (s *uploads) newMultipart(ctx context.Context, id string) (string, error) {
	_, err := s.core.PutObject(ctx, s.cfg.Bucket, s.keys.uploadStarted(id), bytes.NewReader(nil), 0, "", "", putOptions(crc32c(nil)))
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

func (s *uploads) sendPart(ctx context.Context, id, uploadID string, number int, b *partBuf) (part, error) {
	sum := b.checksum()
	opts := minio.PutObjectPartOptions{
		DisableContentSha256: true,
		CustomHeader: http.Header{
			"X-Amz-Checksum-Crc32c":    {sum},
			"X-Amz-Checksum-Algorithm": {"CRC32C"},
		},
	}
	p, err := s.core.PutObjectPart(ctx, s.cfg.Bucket, s.keys.uploadData(id), uploadID, number, b.reader(), b.len(), opts)
	if err != nil {
		return part{}, uploadErr(id, err)
	}
	return part{Number: number, Size: b.len(), ETag: p.ETag, CRC32C: sum}, nil
}

func (s *uploads) completeMultipart(ctx context.Context, id string, st writerState) error {
	parts := make([]minio.CompletePart, len(st.Parts))
	for i, p := range st.Parts {
		parts[i] = minio.CompletePart{PartNumber: p.Number, ETag: p.ETag, ChecksumCRC32C: p.CRC32C}
	}
	_, err := s.core.CompleteMultipartUpload(ctx, s.cfg.Bucket, s.keys.uploadData(id), st.UploadID, parts, minio.PutObjectOptions{})
	return uploadErr(id, err)
}

// abortMultipart aborts a multipart upload; one already gone is no error.
func (s *uploads) abortMultipart(ctx context.Context, id, uploadID string) error {
	err := s.core.AbortMultipartUpload(ctx, s.cfg.Bucket, s.keys.uploadData(id), uploadID)
	if err != nil && !isNotFound(err) {
		return wrap("s3 abort upload "+id, err)
	}
	return nil
}

func (s *uploads) putTail(ctx context.Context, id string, gen int, b *partBuf) error {
	_, err := s.core.PutObject(ctx, s.cfg.Bucket, s.keys.uploadTail(id, gen), b.reader(), b.len(), "", "", putOptions(b.checksum()))
	return wrap("s3 record upload "+id, err)
}

func (s *uploads) removeTail(ctx context.Context, id string, gen int) {
	_ = s.client.RemoveObject(ctx, s.cfg.Bucket, s.keys.uploadTail(id, gen), minio.RemoveObjectOptions{})
}

// readTail reads the tail st names into a buffer that writes may extend.
func (s *uploads) readTail(ctx context.Context, id string, st writerState) (*partBuf, error) {
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
	b := &partBuf{b: make([]byte, 0, size)}
	if size > smallTail || st.UploadID != "" {
		if b, err = s.parts.get(); err != nil {
			return nil, err
		}
	}
	n, err := io.Copy(b, io.LimitReader(body, size+1))
	switch {
	case err == nil && n < size:
		err = wrap("s3 read upload "+id, io.ErrUnexpectedEOF)
	case err == nil && n > size:
		err = fmt.Errorf("upload %s: tail longer than its state: %w", id, storage.ErrUploadUnknown)
	case err != nil:
		err = wrap("s3 read upload "+id, err)
	}
	if err != nil {
		s.parts.put(b)
		return nil, err
	}
	return b, nil
}

// removeUpload removes every object under the upload's prefix.
func (s *uploads) removeUpload(ctx context.Context, id string) error {
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

// rehashUpload hashes the completed upload with alg.
func (s *uploads) rehashUpload(ctx context.Context, id string, alg digest.Algorithm) (digest.Digest, error) {
	body, err := s.getObject(ctx, s.keys.uploadData(id))
	if err != nil {
		return "", uploadErr(id, err)
	}
	defer body.Close()
	v := alg.Digester()
	if _, err := io.Copy(v.Hash(), body); err != nil {
		return "", wrap("s3 rehash upload "+id, err)
	}
	return v.Digest(), nil
}

// multipartUploads lists the multipart uploads of upload id.
func (s *uploads) multipartUploads(ctx context.Context, id string) ([]minio.ObjectMultipartInfo, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	key := s.keys.uploadData(id)
	var uploads []minio.ObjectMultipartInfo
	for u := range s.client.ListIncompleteUploads(ctx, s.cfg.Bucket, key, false) {
		if u.Err != nil {
			return nil, wrap("s3 list upload "+id, u.Err)
		}
		if u.Key == key {
			uploads = append(uploads, u)
		}
	}
	return uploads, nil
}
