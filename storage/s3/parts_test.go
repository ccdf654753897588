package s3

import (
	"context"
	"io"

	"github.com/opencontainers/go-digest"
)

// A Store is composed of parts (blobs, writers, purger, signer,
// foreignKeys, records, tally) and must keep every interface and optional
// capability its users find on it: the storage ones are asserted in s3.go,
// these are copies of other consumers' (node/placement's LocalStore adds
// Check; node/registry2's Bucket, ObjectAdopter and Recorder; node's
// metrics PartBuffers), which
// package storage may not import. Two parts promoting a method of the same
// name at the same depth would hide it: this list then fails to compile.
var (
	_ checker       = (*Store)(nil)
	_ keyBucket     = (*Store)(nil)
	_ objectAdopter = (*Store)(nil)
	_ namedRecords  = (*Store)(nil)
	_ partBuffers   = (*Store)(nil)
)

type partBuffers interface { // node's metrics
	PartBuffers() (inMemory, spilled int)
}

type checker interface {
	Check(ctx context.Context) error
}

type keyBucket interface {
	WalkKeys(ctx context.Context, prefix string, fn func(key string, size int64) error) error
	StatKey(ctx context.Context, key string) (int64, error)
	OpenKey(ctx context.Context, key string) (io.ReadCloser, error)
}

type objectAdopter interface {
	AdoptObject(ctx context.Context, d digest.Digest, key string, size int64) error
}

type namedRecords interface {
	PutRecord(ctx context.Context, name string, b []byte) error
	Record(ctx context.Context, name string) ([]byte, error)
}
