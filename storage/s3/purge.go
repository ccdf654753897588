package s3

import (
	"context"
	"time"

	"github.com/minio/minio-go/v7"
)

// purger removes what uploads left behind (storage.UploadPurger). Its
// methods may be called concurrently.
type purger struct {
	*uploads
}

// PurgeUploads implements storage.UploadPurger. For every upload id that
// keep does not keep, it aborts the multipart uploads started before cutoff
// and removes the objects last written before cutoff. Upload ids are found
// by listing multipart uploads under <root>/uploads/ (AWS) and the objects
// there (MinIO lists multipart uploads only by exact key; the "started"
// marker of keys makes them visible).
func (s *purger) PurgeUploads(ctx context.Context, cutoff time.Time, keep func(id string) bool) error {
	ids, err := s.uploadIDs(ctx)
	if err != nil {
		return err
	}
	for id := range ids {
		if keep(id) {
			continue
		}
		if err := s.purgeUpload(ctx, id, cutoff); err != nil {
			return err
		}
	}
	return nil
}

// uploadIDs lists the ids of the uploads that left anything in the bucket.
func (s *purger) uploadIDs(ctx context.Context) (map[string]bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the listings on an early return
	ids := map[string]bool{}
	for u := range s.client.ListIncompleteUploads(ctx, s.cfg.Bucket, s.keys.uploads(), true) {
		if u.Err != nil {
			return nil, wrap("s3 list uploads", u.Err)
		}
		if id, ok := s.keys.parseUpload(u.Key); ok {
			ids[id] = true
		}
	}
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: s.keys.uploads(), Recursive: true}) {
		if obj.Err != nil {
			return nil, wrap("s3 list uploads", obj.Err)
		}
		if id, ok := s.keys.parseUpload(obj.Key); ok {
			ids[id] = true
		}
	}
	return ids, nil
}

func (s *purger) purgeUpload(ctx context.Context, id string, cutoff time.Time) error {
	uploads, err := s.multipartUploads(ctx, id)
	if err != nil {
		return err
	}
	young := false // a multipart upload stays: so does the marker that finds it
	for _, u := range uploads {
		if !u.Initiated.Before(cutoff) {
			young = true
			continue
		}
		if err := s.abortMultipart(ctx, id, u.UploadID); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the listing on an early return
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: s.keys.upload(id), Recursive: true}) {
		if obj.Err != nil {
			return wrap("s3 purge upload "+id, obj.Err)
		}
		if obj.LastModified.Before(cutoff) && !(young && obj.Key == s.keys.uploadStarted(id)) {
			if err := s.client.RemoveObject(ctx, s.cfg.Bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil {
				return wrap("s3 purge upload "+id, err)
			}
		}
	}
	return nil
}
