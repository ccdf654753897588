package metadb

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/diskspace"
	"github.com/atollhq/atoll/storage/metalog"
)

// PutUpload implements storage.Uploads.
func (s *uploadRecords) PutUpload(ctx context.Context, u *storage.Upload) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	rec, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("encode upload %s: %w", u.ID, err)
	}
	if err := s.admit(true); err != nil {
		return fmt.Errorf("save upload %s: %w", u.ID, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUploads).Put([]byte(u.ID), rec)
	})
	if err != nil {
		return diskspace.Classify(fmt.Errorf("save upload %s: %w", u.ID, err))
	}
	return nil
}

// Upload implements storage.Uploads.
func (s *uploadRecords) Upload(id string) (*storage.Upload, error) {
	var u *storage.Upload
	err := s.db.View(func(tx *bolt.Tx) error {
		rec := tx.Bucket(bucketUploads).Get([]byte(id))
		if rec == nil {
			return storage.ErrUploadUnknown
		}
		u = new(storage.Upload)
		return json.Unmarshal(rec, u)
	})
	return u, err
}

// ListUploads implements storage.Uploads.
func (s *uploadRecords) ListUploads() ([]*storage.Upload, error) {
	var out []*storage.Upload
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUploads).ForEach(func(_, rec []byte) error {
			u := new(storage.Upload)
			if err := json.Unmarshal(rec, u); err != nil {
				return err
			}
			out = append(out, u)
			return nil
		})
	})
	return out, err
}

// DeleteUpload implements storage.Uploads.
func (s *uploadRecords) DeleteUpload(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.admit(false); err != nil {
		return err
	}
	return diskspace.Classify(s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUploads)
		if b.Get([]byte(id)) == nil {
			return storage.ErrUploadUnknown
		}
		return b.Delete([]byte(id))
	}))
}

// CompleteUpload implements storage.Uploads; size 0 records none.
func (s *uploadRecords) CompleteUpload(ctx context.Context, id string, d digest.Digest, size int64) error {
	u, err := s.Upload(id)
	if err != nil {
		return err
	}
	rec, err := json.Marshal(storage.FinishedUpload{Repo: u.Repo, Digest: d, At: time.Now()})
	if err != nil {
		return fmt.Errorf("encode finished upload %s: %w", id, err)
	}
	// The blob is on disk already: the link may use the whole reserve, so a
	// full disk does not strand a committed upload.
	return s.writeReserved(ctx, true, func(st *state) ([]metalog.Op, error) {
		return linkOps(st, u.Repo, d, size), nil
	}, func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketUploads).Delete([]byte(id)); err != nil {
			return err
		}
		return tx.Bucket(bucketFinished).Put([]byte(id), rec)
	})
}

// FinishedUpload implements storage.Uploads.
func (s *uploadRecords) FinishedUpload(id string) (storage.FinishedUpload, error) {
	var f storage.FinishedUpload
	err := s.db.View(func(tx *bolt.Tx) error {
		rec := tx.Bucket(bucketFinished).Get([]byte(id))
		if rec == nil {
			return storage.ErrUploadUnknown
		}
		return json.Unmarshal(rec, &f)
	})
	return f, err
}

// ForgetFinishedUploads implements storage.Uploads.
func (s *uploadRecords) ForgetFinishedUploads(ctx context.Context, cutoff time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.admit(false); err != nil {
		return err
	}
	return diskspace.Classify(s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketFinished).Cursor()
		for k, rec := c.First(); k != nil; k, rec = c.Next() {
			var f storage.FinishedUpload
			if err := json.Unmarshal(rec, &f); err != nil || f.At.Before(cutoff) {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		return nil
	}))
}
