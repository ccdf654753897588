package node

import (
	"context"
	"path/filepath"

	"github.com/atollhq/atoll/node/registry2"
)

// ImportRegistry2 adopts the registry:2 directory dir into this member's
// storage (package registry2): blobs by hard link where they share a
// filesystem, metadata through the member's store (so a cluster's other
// members receive it). Run it before Run: the registry serves nothing until
// the import is done. A finished import is recorded in the data directory
// and not run again; an interrupted one runs again from the start, skipping
// what it had done.
func (n *Node) ImportRegistry2(ctx context.Context, dir string, opts registry2.Options) (registry2.Report, error) {
	if opts.Marker == "" && !opts.DryRun {
		opts.Marker = filepath.Join(n.cfg.DataDir, "registry2-import.json")
	}
	return registry2.Run(ctx, dir, registry2.Deps{Blobs: n.local, Meta: n.meta, Logger: n.log}, opts)
}

// Registry2Imported reports whether the registry:2 directory dir was
// imported into this member's data directory.
func (n *Node) Registry2Imported(dir string) bool {
	return registry2.Done(filepath.Join(n.cfg.DataDir, "registry2-import.json"), dir)
}
