package s3

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	miniotest "github.com/atollhq/atoll/test/minio"
)

// TestAdoptObject reads a foreign tree kept under the store's root (as
// registry:2's is) and adopts one of its objects as a blob by a
// server-side copy: the blob is readable and counted, the source stays,
// adopting again changes nothing; records round-trip; missing keys wrap
// fs.ErrNotExist.
func TestAdoptObject(t *testing.T) {
	srv := miniotest.Start(t)
	s := newStore(t, srv, nil)
	ctx := context.Background()
	content := []byte("a layer registry:2 stored")
	d := digest.FromBytes(content)
	key := "docker/registry/v2/blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded() + "/data"
	if _, err := s.client.PutObject(ctx, testBucket, s.keys.foreign(key), bytes.NewReader(content), int64(len(content)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	var keys []string
	err := s.WalkKeys(ctx, "docker/registry/v2/", func(k string, size int64) error {
		keys = append(keys, k)
		if size != int64(len(content)) {
			t.Errorf("%s: size %d", k, size)
		}
		return nil
	})
	if err != nil || len(keys) != 1 || keys[0] != key {
		t.Fatalf("WalkKeys: %v, %v; want [%s]", keys, err, key)
	}
	if size, err := s.StatKey(ctx, key); err != nil || size != int64(len(content)) {
		t.Errorf("StatKey: %d, %v", size, err)
	}
	if _, err := s.StatKey(ctx, key+".missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("StatKey of a missing key: %v, want fs.ErrNotExist", err)
	}

	blobs, bytesHeld := s.Usage()
	for range 2 {
		if err := s.AdoptObject(ctx, d, key, int64(len(content))); err != nil {
			t.Fatalf("AdoptObject: %v", err)
		}
	}
	if got := readBlob(t, s, d); !bytes.Equal(got, content) {
		t.Errorf("adopted blob reads %q", got)
	}
	if b, n := s.Usage(); b != blobs+1 || n != bytesHeld+int64(len(content)) {
		t.Errorf("usage %d blobs %d bytes after adopting once, was %d %d", b, n, blobs, bytesHeld)
	}
	r, err := s.OpenKey(ctx, key)
	if err != nil {
		t.Fatalf("the source is gone: %v", err)
	}
	r.Close()
	if _, err := s.OpenKey(ctx, "docker/none"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenKey of a missing key: %v", err)
	}

	if _, err := s.Record(ctx, "import.json"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a record never written: %v", err)
	}
	if err := s.PutRecord(ctx, "import.json", []byte(`{"done":true}`)); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Record(ctx, "import.json")
	if err != nil || string(rec) != `{"done":true}` {
		t.Errorf("record %q, %v", rec, err)
	}
	var n int
	_ = s.Walk(ctx, func(digest.Digest, int64) error { n++; return nil })
	if n != 1 {
		t.Errorf("Walk finds %d blobs, want the adopted one (records and foreign keys are not blobs)", n)
	}
}
