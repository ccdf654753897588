package metadb_test

import (
	"context"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/node/gc"
	"github.com/atollhq/atoll/node/metasync"
	"github.com/atollhq/atoll/node/policy"
	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metadb"
)

// A Store is composed of parts (parts.go) and must keep every interface
// its users find on it, whether they take it as one or look for it at run
// time (gc's RecordCollector, metasync's compacter, api's blobSizes). The
// unexported ones are copies of the consumers' (api, node/metasync,
// node/replication). Two parts promoting a method of the same name at the
// same depth would hide it: this list then fails to compile.
var (
	_ storage.Metadata           = (*metadb.Store)(nil)
	_ storage.Inventory          = (*metadb.Store)(nil)
	_ metasync.Log               = (*metadb.Store)(nil)
	_ gc.Metadata                = (*metadb.Store)(nil)
	_ gc.RecordCollector         = (*metadb.Store)(nil)
	_ policy.Pins                = (*metadb.Store)(nil)
	_ policy.UsageReader         = (*metadb.Store)(nil)
	_ compacter                  = (*metadb.Store)(nil)
	_ uploadStore                = (*metadb.Store)(nil)
	_ manifestStore              = (*metadb.Store)(nil)
	_ blobSizes                  = (*metadb.Store)(nil)
	_ referrerIndex              = (*metadb.Store)(nil)
	_ ownMethods                 = (*metadb.Store)(nil)
	_ storage.Metadata           = (*metasync.Store)(nil)
	_ gc.Metadata                = (*metasync.Store)(nil)
	_ gc.RecordCollector         = (*metasync.Store)(nil)
	_ policy.Pins                = (*metasync.Store)(nil)
	_ policy.UsageReader         = (*metasync.Store)(nil)
	_ interface{ Close() error } = (*metadb.Store)(nil)
)

// node/metasync's compacter.
type compacter interface {
	CompactIfSparse(ctx context.Context) (metadb.Compaction, error)
}

// api's uploadStore.
type uploadStore interface {
	storage.Uploads
	LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error
}

// api's manifestStore.
type manifestStore interface {
	storage.Manifests
	BlobLinked(repo string, d digest.Digest) bool
}

// api's blobSizes.
type blobSizes interface {
	BlobSize(d digest.Digest) (int64, bool)
}

// api's referrerIndex.
type referrerIndex interface {
	Referrers(repo string, d digest.Digest) []v1.Descriptor
}

// What node/replication's pullMeta and pushMeta add to storage.Metadata's
// reads, and the rest of the Store's own methods its users call (bench,
// tests, node).
type ownMethods interface {
	Repositories(last string, n int) []string
	Referrers(repo string, d digest.Digest) []v1.Descriptor
	PutManifests(ctx context.Context, puts []metadb.ManifestPut) error
	Pinned(repo, tag string) (digest.Digest, bool)
	BlobRepos(d digest.Digest) []string
	LogLen() (int, error)
}
