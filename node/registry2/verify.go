package registry2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// Lazy verification (Options.NoVerify): the import adopts blobs without
// hashing them and saves their list; Verify then hashes each from atoll's
// store while the registry serves. A blob whose content does not match its
// digest is unlinked from every repository and deleted from the store,
// with a warning naming it and those repositories: a pull of it answers
// 404 BLOB_UNKNOWN from then on, rather than bytes a client would reject,
// and the next push of that layer uploads it again (a HEAD no longer says
// it exists). Until then, a pull gets the corrupt bytes (clients check
// digests and fail), and a push that reuses the layer is told it exists.
// Manifests are checked at import either way.

// VerifyBlobs is atoll's blob store as Verify uses it.
type VerifyBlobs interface {
	Open(ctx context.Context, d digest.Digest) (storage.Blob, error)
	Delete(ctx context.Context, d digest.Digest) error
}

// VerifyMeta is atoll's metadata store as Verify uses it.
type VerifyMeta interface {
	BlobRepos(d digest.Digest) []string
	UnlinkEverywhere(ctx context.Context, ds []digest.Digest) error
}

// VerifyDeps are what Verify reads and repairs.
type VerifyDeps struct {
	Blobs  VerifyBlobs
	Meta   VerifyMeta
	Logger *slog.Logger // progress and warnings; optional
	// ProgressEvery is how often progress is logged and saved. Default 5s.
	ProgressEvery time.Duration
}

// VerifyReport is what a verification did.
type VerifyReport struct {
	Blobs    int           `json:"blobs"`    // blobs to verify in all
	Verified int           `json:"verified"` // found matching their digest (this run)
	Corrupt  int           `json:"corrupt"`  // not matching: unlinked and deleted (this run)
	Missing  int           `json:"missing"`  // no longer held (collected meanwhile)
	Bytes    int64         `json:"bytes"`    // hashed (this run)
	Duration time.Duration `json:"duration"`
}

// verifyState is the saved list of blobs to verify and how far
// verification went: Blobs[:Next] are done.
type verifyState struct {
	Source string          `json:"source"`
	Blobs  []digest.Digest `json:"blobs,omitempty"`
	Next   int             `json:"next"`
	Done   bool            `json:"done,omitempty"`
}

func saveVerifyState(ctx context.Context, rec Record, st verifyState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return rec.Save(ctx, b)
}

func loadVerifyState(ctx context.Context, rec Record) (verifyState, error) {
	var st verifyState
	b, err := rec.Load(ctx)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("verification state: %w", err)
	}
	return st, nil
}

// VerifyPending reports whether rec holds blobs still to verify.
func VerifyPending(ctx context.Context, rec Record) bool {
	st, err := loadVerifyState(ctx, rec)
	return err == nil && !st.Done && st.Next < len(st.Blobs)
}

// Verify hashes, in digest order, the blobs listed in rec that are not yet
// verified (see Lazy verification above), saving how far it went every
// ProgressEvery and when ctx ends: killed, it goes on from about there
// when run again. It returns ctx's error when cut short. Nothing to verify
// is not an error.
func Verify(ctx context.Context, rec Record, deps VerifyDeps) (VerifyReport, error) {
	start := time.Now()
	var rep VerifyReport
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if deps.ProgressEvery <= 0 {
		deps.ProgressEvery = 5 * time.Second
	}
	st, err := loadVerifyState(ctx, rec)
	if errors.Is(err, fs.ErrNotExist) {
		return rep, nil
	}
	if err != nil || st.Done {
		return rep, err
	}
	rep.Blobs = len(st.Blobs)
	log.Info("verifying imported registry:2 blobs in the background", "source", st.Source, "blobs", len(st.Blobs), "from", st.Next)
	p := newProgress(len(st.Blobs)-st.Next, 0)
	last := time.Now()
	for st.Next < len(st.Blobs) {
		if err := ctx.Err(); err != nil {
			return rep, errors.Join(err, saveVerifyState(context.WithoutCancel(ctx), rec, st))
		}
		d := st.Blobs[st.Next]
		size, ok, err := hashBlob(ctx, deps.Blobs, d)
		switch {
		case errors.Is(err, storage.ErrBlobUnknown):
			rep.Missing++
		case err != nil && ctx.Err() != nil:
			continue // saved at the top of the loop
		case err != nil:
			return rep, fmt.Errorf("verify %s: %w", d, err)
		case ok:
			rep.Verified++
		default:
			if err := dropCorrupt(ctx, deps, log, d); err != nil {
				return rep, err
			}
			rep.Corrupt++
		}
		rep.Bytes += size
		p.add(size)
		st.Next++
		if time.Since(last) >= deps.ProgressEvery {
			last = time.Now()
			p.log(log, "verifying imported registry:2 blobs")
			if err := saveVerifyState(ctx, rec, st); err != nil {
				return rep, fmt.Errorf("verify: saving progress: %w", err)
			}
		}
	}
	rep.Duration = time.Since(start)
	if err := saveVerifyState(ctx, rec, verifyState{Source: st.Source, Next: len(st.Blobs), Done: true}); err != nil {
		return rep, fmt.Errorf("verify: saving progress: %w", err)
	}
	log.Info("imported registry:2 blobs verified", "blobs", rep.Blobs, "verified", rep.Verified,
		"corrupt", rep.Corrupt, "missing", rep.Missing, "bytes", rep.Bytes, "took", rep.Duration.Round(time.Millisecond))
	return rep, nil
}

// hashBlob reports whether atoll's blob d matches its digest.
func hashBlob(ctx context.Context, blobs VerifyBlobs, d digest.Digest) (size int64, ok bool, err error) {
	b, err := blobs.Open(ctx, d)
	if err != nil {
		return 0, false, err
	}
	defer b.Close()
	v := d.Verifier()
	n, err := io.Copy(v, b)
	return n, err == nil && v.Verified(), err
}

// dropCorrupt unlinks corrupt blob d everywhere, then deletes it.
func dropCorrupt(ctx context.Context, deps VerifyDeps, log *slog.Logger, d digest.Digest) error {
	repos := deps.Meta.BlobRepos(d)
	log.Warn("imported blob content does not match its digest: unlinked and deleted (push it again to repair the images that use it)",
		"digest", d, "repositories", repos)
	if err := deps.Meta.UnlinkEverywhere(ctx, []digest.Digest{d}); err != nil {
		return fmt.Errorf("verify: unlinking corrupt blob %s: %w", d, err)
	}
	if err := deps.Blobs.Delete(ctx, d); err != nil && !errors.Is(err, storage.ErrBlobUnknown) {
		return fmt.Errorf("verify: deleting corrupt blob %s: %w", d, err)
	}
	return nil
}
