package node

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/atollhq/atoll/node/metasync"
	"github.com/atollhq/atoll/node/placement"
	"github.com/atollhq/atoll/node/registry2"
	"github.com/atollhq/atoll/storage/s3"
)

const (
	// registry2Record names the record of a finished registry:2 import: a
	// file in the data directory, or an object of the bucket when the
	// import read the bucket (so a member joining later on the same
	// bucket does not import it again).
	registry2Record = "registry2-import.json"
	// registry2Verify is the file in the data directory listing the blobs
	// an import adopted without hashing them, and how far their
	// background verification went.
	registry2Verify = "registry2-verify.json"
)

// bucketStore is the S3 store as an import reads registry:2's tree next to
// its own and records the import.
type bucketStore interface {
	registry2.Bucket
	registry2.Recorder
}

// Registry2 imports registry:2 trees into a member's storage: its data
// directory, its blob store (on disk or in a bucket) and its metadata.
type Registry2 struct {
	dataDir string
	bucket  *s3.Config // nil: blobs on disk
	local   placement.LocalStore
	meta    *metasync.Store
	log     *slog.Logger
}

// Registry2 returns the member's registry:2 importer.
func (n *Node) Registry2() *Registry2 {
	return &Registry2{dataDir: n.cfg.DataDir, bucket: n.cfg.Storage.S3, local: n.local, meta: n.meta, log: n.log}
}

// source is the registry:2 tree to import and where its import is
// recorded: the directory from when set, else the member's own storage
// (the data directory, or the bucket under its root directory when blobs
// live in S3).
func (i *Registry2) source(from string) (registry2.Source, registry2.Record) {
	if from == "" {
		if b, ok := i.local.(bucketStore); ok && i.bucket != nil {
			c := i.bucket
			name := strings.TrimSuffix("s3://"+c.Bucket+"/"+strings.Trim(c.RootDirectory, "/"), "/")
			return registry2.BucketSource(b, name), registry2.StoreRecord(b, registry2Record)
		}
		from = i.dataDir
	}
	return registry2.DirSource(from), registry2.FileRecord(filepath.Join(i.dataDir, registry2Record))
}

// Pending reports whether a registry:2 tree waits to be imported
// (see source for from): it holds registry:2's layout and no
// finished import of it is recorded. A from without the layout is an
// error; the member's own storage without it is not.
func (i *Registry2) Pending(ctx context.Context, from string) (bool, error) {
	src, rec := i.source(from)
	if !registry2.Detect(ctx, src) {
		if from != "" {
			return false, fmt.Errorf("%s holds no registry:2 layout (docker/registry/v2/{blobs,repositories})", src)
		}
		return false, nil
	}
	done, err := registry2.Done(ctx, rec, src)
	return !done, err
}

// Import adopts a registry:2 tree (see source for from)
// into this member's storage (package registry2): blobs by hard link on
// the same filesystem, by a server-side copy in the same bucket, metadata
// through the member's store (so a cluster's other members receive it).
// Run it before Run: the registry serves nothing until the import is done.
// A finished import is recorded and not run again; an interrupted one runs
// again from the start, skipping what it had done. With opts.NoVerify the
// blobs adopted are verified by Run in the background.
func (i *Registry2) Import(ctx context.Context, from string, opts registry2.Options) (registry2.Report, error) {
	src, rec := i.source(from)
	if !opts.DryRun {
		if opts.Record == nil {
			opts.Record = rec
		}
		if opts.NoVerify && opts.Unverified == nil {
			opts.Unverified = registry2.FileRecord(filepath.Join(i.dataDir, registry2Verify))
		}
	}
	return registry2.Run(ctx, src, registry2.Deps{Blobs: i.local, Meta: i.meta, Logger: i.log}, opts)
}

// verifyRegistry2 hashes, in the background, the blobs an import adopted
// without hashing them (registry2.Verify), going on after a restart.
func (i *Registry2) verify(ctx context.Context) {
	rec := registry2.FileRecord(filepath.Join(i.dataDir, registry2Verify))
	if !registry2.VerifyPending(ctx, rec) {
		return
	}
	_, err := registry2.Verify(ctx, rec, registry2.VerifyDeps{Blobs: i.local, Meta: i.meta, Logger: i.log})
	if err != nil && ctx.Err() == nil {
		i.log.Error("verifying imported registry:2 blobs stopped (it goes on at the next start)", "err", err)
	}
}
