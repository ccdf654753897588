package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/atollhq/atoll/storage"
)

// expireUpload discards upload id if it is idle since before cutoff or its
// bytes are gone, holding its lock so no request races the check. A
// session a request is working on is skipped, not waited for: that
// request may come from a slow client.
func (reg *Registry) expireUpload(ctx context.Context, id string, cutoff time.Time) (bool, error) {
	unlock, ok := reg.uploads.tryLock(id)
	if !ok {
		return false, nil
	}
	defer unlock()
	u, err := reg.meta.Upload(id)
	if err != nil {
		return false, nil // finished meanwhile
	}
	if (u.Started.After(cutoff) || u.Updated.After(cutoff)) && reg.uploadIntact(ctx, u) {
		return false, nil
	}
	if err := reg.discard(ctx, u); err != nil && !errors.Is(err, storage.ErrUploadUnknown) {
		return false, err
	}
	return true, nil
}

// uploadIntact reports whether u's bytes are still there: a crash after a
// commit's rename and before the session was removed leaves a session
// whose bytes became a blob.
func (reg *Registry) uploadIntact(ctx context.Context, u *storage.Upload) bool {
	if u.State == nil {
		return true
	}
	bw, err := reg.blobs.Writer(ctx, u.ID, u.State)
	if err != nil {
		return !errors.Is(err, storage.ErrUploadUnknown)
	}
	_ = bw.Close()
	return true
}

// ExpireUploads discards upload sessions idle since before now - UploadTTL
// or whose bytes are gone, bytes of uploads that have no session, and the
// record of sessions that finished before then.
func (reg *Registry) ExpireUploads(ctx context.Context, now time.Time) (int, error) {
	cutoff := now.Add(-reg.cfg.UploadTTL)
	if err := reg.meta.ForgetFinishedUploads(ctx, cutoff); err != nil {
		return 0, err
	}
	all, err := reg.meta.ListUploads()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, u := range all {
		expired, err := reg.expireUpload(ctx, u.ID, cutoff)
		if err != nil {
			return n, fmt.Errorf("expire upload %s: %w", u.ID, err)
		}
		if expired {
			n++
		}
	}
	if p, ok := reg.blobs.(storage.UploadPurger); ok {
		err = p.PurgeUploads(ctx, cutoff, func(id string) bool {
			_, err := reg.meta.Upload(id)
			return err == nil
		})
	}
	return n, err
}
