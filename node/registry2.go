package node

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/atollhq/atoll/node/registry2"
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

// registry2Source is the registry:2 tree to import and where its import is
// recorded: the directory from when set, else the member's own storage
// (the data directory, or the bucket under its root directory when blobs
// live in S3).
func (n *Node) registry2Source(from string) (registry2.Source, registry2.Record) {
	if from == "" {
		if b, ok := n.local.(bucketStore); ok && n.cfg.Storage.S3 != nil {
			c := n.cfg.Storage.S3
			name := strings.TrimSuffix("s3://"+c.Bucket+"/"+strings.Trim(c.RootDirectory, "/"), "/")
			return registry2.BucketSource(b, name), registry2.StoreRecord(b, registry2Record)
		}
		from = n.cfg.DataDir
	}
	return registry2.DirSource(from), registry2.FileRecord(filepath.Join(n.cfg.DataDir, registry2Record))
}

// Registry2Pending reports whether a registry:2 tree waits to be imported
// (see registry2Source for from): it holds registry:2's layout and no
// finished import of it is recorded. A from without the layout is an
// error; the member's own storage without it is not.
func (n *Node) Registry2Pending(ctx context.Context, from string) (bool, error) {
	src, rec := n.registry2Source(from)
	if !registry2.Detect(ctx, src) {
		if from != "" {
			return false, fmt.Errorf("%s holds no registry:2 layout (docker/registry/v2/{blobs,repositories})", src)
		}
		return false, nil
	}
	done, err := registry2.Done(ctx, rec, src)
	return !done, err
}

// ImportRegistry2 adopts a registry:2 tree (see registry2Source for from)
// into this member's storage (package registry2): blobs by hard link on
// the same filesystem, by a server-side copy in the same bucket, metadata
// through the member's store (so a cluster's other members receive it).
// Run it before Run: the registry serves nothing until the import is done.
// A finished import is recorded and not run again; an interrupted one runs
// again from the start, skipping what it had done. With opts.NoVerify the
// blobs adopted are verified by Run in the background.
func (n *Node) ImportRegistry2(ctx context.Context, from string, opts registry2.Options) (registry2.Report, error) {
	src, rec := n.registry2Source(from)
	if !opts.DryRun {
		if opts.Record == nil {
			opts.Record = rec
		}
		if opts.NoVerify && opts.Unverified == nil {
			opts.Unverified = registry2.FileRecord(filepath.Join(n.cfg.DataDir, registry2Verify))
		}
	}
	return registry2.Run(ctx, src, registry2.Deps{Blobs: n.local, Meta: n.meta, Logger: n.log}, opts)
}

// verifyRegistry2 hashes, in the background, the blobs an import adopted
// without hashing them (registry2.Verify), going on after a restart.
func (n *Node) verifyRegistry2(ctx context.Context) {
	rec := registry2.FileRecord(filepath.Join(n.cfg.DataDir, registry2Verify))
	if !registry2.VerifyPending(ctx, rec) {
		return
	}
	_, err := registry2.Verify(ctx, rec, registry2.VerifyDeps{Blobs: n.local, Meta: n.meta, Logger: n.log})
	if err != nil && ctx.Err() == nil {
		n.log.Error("verifying imported registry:2 blobs stopped (it goes on at the next start)", "err", err)
	}
}
