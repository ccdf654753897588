package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metadb"
	"github.com/atollhq/atoll/storage/metalog"
)

// recordMender replaces a bad manifest record here (a scrub found its
// bytes do not match its digest) with another member's: the one entry
// of the record's key from its snapshot service, verified before it is
// written (metadb.Store.MendRecord).
type recordMender struct {
	views *views
	// snapshot asks member for up to limit entries after key after.
	snapshot func(ctx context.Context, member, after string, limit int) (metalog.Chunk, error)
	mend     func(ctx context.Context, op metalog.Op) error
	timeout  time.Duration // for each member's answer
}

func newRecordMender(n *Node) *recordMender {
	r := &recordMender{views: &n.views, snapshot: n.cluster.Client().Snapshot, mend: n.meta.MendRecord, timeout: 30 * time.Second}
	if n.cfg.Cluster.Fast {
		r.timeout = 3 * time.Second
	}
	return r
}

// mendRecord is a scrub's MendRecord: it asks the other live members in
// turn. It wraps scrub.ErrNoGoodCopy when every one answered that it has
// no good record and no member is down, and metadb.ErrRecordGone when the
// record here was deleted meanwhile.
func (r *recordMender) mendRecord(ctx context.Context, d digest.Digest) (string, error) {
	v := r.views.load()
	if v == nil {
		return "", errors.New("not a member of a cluster yet")
	}
	key, before := metadb.RecordKey(d)
	var failed []string
	none := true // every member asked has no good record
	for _, m := range v.peers() {
		err := r.mendFrom(ctx, m, key, before)
		if err == nil || errors.Is(err, metadb.ErrRecordGone) {
			return m, err
		}
		failed = append(failed, fmt.Sprintf("%s: %v", m, err))
		none = none && (errors.Is(err, errHoldsNone) || errors.Is(err, storage.ErrDigestMismatch))
	}
	return "", noneFound(v, failed, none)
}

func (r *recordMender) mendFrom(ctx context.Context, m, key, before string) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	c, err := r.snapshot(ctx, m, before, 1)
	if err != nil {
		return err
	}
	if len(c.Entries) == 0 || c.Entries[0].Key != key || c.Entries[0].Deleted {
		return errHoldsNone
	}
	return r.mend(ctx, c.Entries[0])
}
