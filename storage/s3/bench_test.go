package s3

import (
	"context"
	"crypto/sha256"
	"io"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	miniotest "github.com/atollhq/atoll/test/minio"
)

// BenchmarkPutGet moves a 256 MiB blob through the store and, for scale,
// through minio-go alone, against MinIO on loopback:
//
//	go test -run '^$' -bench PutGet -benchtime 3x ./storage/s3/
//
// store/put includes hashing, the parts, completing the multipart upload and
// the server-side copy to the blob's key; minio-go/copy is that copy alone.
func BenchmarkPutGet(b *testing.B) {
	const size = 256 << 20
	srv := miniotest.Start(b)
	s := newStore(b, srv, nil)
	ctx := context.Background()
	src := newPattern(size)
	source := func() io.Reader { return &pattern{block: src.block, n: size} }
	h := sha256.New()
	_, _ = io.Copy(h, source())
	d := digest.NewDigest(digest.SHA256, h)
	key := s.keys.root + "direct"

	direct := func(opts minio.PutObjectOptions) func(b *testing.B) {
		return func(b *testing.B) {
			b.SetBytes(size)
			for range b.N {
				if _, err := s.client.PutObject(ctx, s.cfg.Bucket, key, source(), size, opts); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("minio-go/put", direct(minio.PutObjectOptions{}))
	b.Run("minio-go/put-unsigned", direct(minio.PutObjectOptions{DisableContentSha256: true}))
	b.Run("minio-go/get", func(b *testing.B) {
		b.SetBytes(size)
		for range b.N {
			obj, err := s.client.GetObject(ctx, s.cfg.Bucket, key, minio.GetObjectOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, obj); err != nil || n != size {
				b.Fatalf("read %d bytes: %v", n, err)
			}
			_ = obj.Close()
		}
	})
	b.Run("minio-go/copy", func(b *testing.B) {
		b.SetBytes(size)
		for range b.N {
			dst := minio.CopyDestOptions{Bucket: s.cfg.Bucket, Object: key + ".copy"}
			if _, err := s.client.CopyObject(ctx, dst, minio.CopySrcOptions{Bucket: s.cfg.Bucket, Object: key}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("store/put", func(b *testing.B) {
		b.SetBytes(size)
		for range b.N {
			b.StopTimer()
			_ = s.Delete(ctx, d) // a commit of a stored blob would skip the work
			b.StartTimer()
			w, err := s.Writer(ctx, "bench", nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(w, source()); err != nil {
				b.Fatal(err)
			}
			if err := w.Commit(ctx, d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("store/get", func(b *testing.B) {
		b.SetBytes(size)
		for range b.N {
			blob, err := s.Open(ctx, d)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, blob); err != nil || n != size {
				b.Fatalf("read %d bytes: %v", n, err)
			}
			_ = blob.Close()
		}
	})
}
