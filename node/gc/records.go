package gc

import (
	"context"
	"time"
)

// RecordCollector is a Metadata that also drops the manifest records no
// repository has linked for a grace period (storage/metadb): a collection
// calls it when the member's metadata has it.
type RecordCollector interface {
	CollectManifests(ctx context.Context, grace time.Duration, dryRun bool) (int, error)
}

// collectRecords drops the manifest records unlinked for the grace
// period, when the metadata store can; it returns how many.
func (c *Collector) collectRecords(ctx context.Context, opts Options) (int, error) {
	rc, ok := c.deps.Meta.(RecordCollector)
	if !ok {
		return 0, nil
	}
	return rc.CollectManifests(ctx, opts.Grace, opts.DryRun)
}
