package minio

import (
	"bytes"
	"context"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// TestServesOnceStarted makes an S3 call right after Start and right after
// Restart, each tried once: Start returns only when MinIO serves S3
// requests, not when its process answers probes. MinIO is live, and ready,
// before its object layer is initialized; a call then failed with "Server
// not initialized yet" (CI's TestAdoptObject).
func TestServesOnceStarted(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client(t, s).MakeBucket(ctx, "served", miniogo.MakeBucketOptions{}); err != nil {
		t.Fatalf("first S3 call after Start: %v", err)
	}
	s.Restart()
	body := []byte("after a restart")
	// A new client: the old one's pooled connections went with the process.
	if _, err := client(t, s).PutObject(ctx, "served", "k", bytes.NewReader(body), int64(len(body)), miniogo.PutObjectOptions{}); err != nil {
		t.Fatalf("first S3 call after Restart: %v", err)
	}
}

// client is a minio-go client of s that tries each call once, so a server
// not serving yet fails the call rather than delaying it.
func client(t *testing.T, s *Server) *miniogo.Client {
	t.Helper()
	c, err := miniogo.New(s.Endpoint(), &miniogo.Options{
		Creds:      credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:     "us-east-1",
		MaxRetries: 1,
	})
	if err != nil {
		t.Fatalf("minio client: %v", err)
	}
	return c
}
