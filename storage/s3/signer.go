package s3

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// signer presigns GETs of blobs (storage.URLSigner). Its methods may be
// called concurrently.
type signer struct {
	*bucket
}

// URLFor returns a presigned URL from which blob d can be fetched for
// expiry: an optional capability, for serving blob GETs by redirect. It does
// not check that the blob exists (callers Stat it first). Without
// Config.Redirect it returns an error wrapping errors.ErrUnsupported, and
// callers stream the blob instead.
func (s *signer) URLFor(ctx context.Context, d digest.Digest, expiry time.Duration) (string, error) {
	if !s.cfg.Redirect {
		return "", fmt.Errorf("s3 redirect disabled: %w", errors.ErrUnsupported)
	}
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("%s: %w", d, storage.ErrBlobUnknown)
	}
	u, err := s.client.PresignedGetObject(ctx, s.cfg.Bucket, s.keys.blob(d), expiry, nil)
	if err != nil {
		return "", wrap("s3 presign "+d.String(), err)
	}
	return u.String(), nil
}
