package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/atollhq/atoll/storage"
)

// uploadSessions are the upload sessions of this registry: their records,
// their bytes and their locks. Its methods may be called concurrently.
type uploadSessions struct {
	blobs storage.BlobStore
	meta  storage.Uploads
	locks *uploadLocks
	ttl   time.Duration // Config.UploadTTL
}

// session returns upload session id. A session is reachable only through
// the repository that started it.
func (s *uploadSessions) session(repo, id string) (*storage.Upload, error) {
	u, err := s.meta.Upload(id)
	if err != nil {
		return nil, newError(http.StatusNotFound, codeBlobUploadUnknown, "upload %q unknown", truncate(id))
	}
	if u.Repo != repo {
		return nil, newError(http.StatusNotFound, codeBlobUploadUnknown, "upload %q unknown in %s", truncate(id), repo)
	}
	return u, nil
}

// discard removes an upload's bytes and its session.
func (s *uploadSessions) discard(ctx context.Context, u *storage.Upload) error {
	bw, err := s.blobs.Writer(ctx, u.ID, u.State)
	if err == nil {
		err = bw.Cancel(ctx)
	}
	if err != nil && !errors.Is(err, storage.ErrUploadUnknown) {
		return err
	}
	return s.meta.DeleteUpload(ctx, u.ID)
}

// expire discards upload id if it is idle since before cutoff or its
// bytes are gone, holding its lock so no request races the check. A
// session a request is working on is skipped, not waited for: that
// request may come from a slow client.
func (s *uploadSessions) expire(ctx context.Context, id string, cutoff time.Time) (bool, error) {
	unlock, ok := s.locks.tryLock(id)
	if !ok {
		return false, nil
	}
	defer unlock()
	u, err := s.meta.Upload(id)
	if err != nil {
		return false, nil // finished meanwhile
	}
	if (u.Started.After(cutoff) || u.Updated.After(cutoff)) && s.intact(ctx, u) {
		return false, nil
	}
	if err := s.discard(ctx, u); err != nil && !errors.Is(err, storage.ErrUploadUnknown) {
		return false, err
	}
	return true, nil
}

// intact reports whether u's bytes are still there: a crash after a
// commit's rename and before the session was removed leaves a session
// whose bytes became a blob.
func (s *uploadSessions) intact(ctx context.Context, u *storage.Upload) bool {
	if u.State == nil {
		return true
	}
	bw, err := s.blobs.Writer(ctx, u.ID, u.State)
	if err != nil {
		return !errors.Is(err, storage.ErrUploadUnknown)
	}
	_ = bw.Close()
	return true
}

// expireAll is Registry.ExpireUploads.
func (s *uploadSessions) expireAll(ctx context.Context, now time.Time) (int, error) {
	cutoff := now.Add(-s.ttl)
	if err := s.meta.ForgetFinishedUploads(ctx, cutoff); err != nil {
		return 0, err
	}
	all, err := s.meta.ListUploads()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, u := range all {
		expired, err := s.expire(ctx, u.ID, cutoff)
		if err != nil {
			return n, fmt.Errorf("expire upload %s: %w", u.ID, err)
		}
		if expired {
			n++
		}
	}
	if p, ok := s.blobs.(storage.UploadPurger); ok {
		err = p.PurgeUploads(ctx, cutoff, func(id string) bool {
			_, err := s.meta.Upload(id)
			return err == nil
		})
	}
	return n, err
}
