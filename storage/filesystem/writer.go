package filesystem

import (
	"context"
	"crypto/sha256"
	_ "crypto/sha512" // digest.SHA512
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/diskspace"
	"github.com/atollhq/atoll/storage/internal/hashing"
)

// writerState is what survives between writers of one upload: the durable
// size and the SHA-256 state after exactly that many bytes.
type writerState struct {
	Size   int64  `json:"size"`
	SHA256 []byte `json:"sha256"`
}

type writer struct {
	s    *Store
	path string
	f    *os.File
	h    *hashing.Async
	size int64
	// flushed is where writeback was last started.
	flushed int64
	// durable is the size a later Writer resumes from: the size given by
	// the state this writer was opened with, or by its last State call.
	// resumable says whether there is such a state; without one a later
	// Writer starts the file afresh.
	durable   int64
	resumable bool
	// failed, once set, is returned by every call: the disk filled up and
	// the bytes after durable were dropped.
	failed error
}

// writebackStep is how many written bytes start writeback.
const writebackStep = 4 << 20

// Writer implements storage.BlobStore. A new upload (nil state) starts
// empty; a resumed one is truncated to the size recorded in state, dropping
// bytes a crash left after it.
func (s *Store) Writer(_ context.Context, id string, state []byte) (storage.BlobWriter, error) {
	path, err := s.uploadPath(id)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	w := &writer{s: s, path: path}
	flags := os.O_RDWR | os.O_CREATE
	if state != nil {
		var st writerState
		if err := json.Unmarshal(state, &st); err != nil {
			return nil, fmt.Errorf("upload %s state: %w", id, err)
		}
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.SHA256); err != nil {
			return nil, fmt.Errorf("upload %s hash state: %w", id, err)
		}
		w.size, w.flushed, w.durable, w.resumable = st.Size, st.Size, st.Size, true
		flags = os.O_RDWR
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("upload %s: %w", id, storage.ErrUploadUnknown)
	}
	if err != nil {
		return nil, diskspace.Classify(fmt.Errorf("upload %s: %w", id, err))
	}
	if err := f.Truncate(w.size); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}
	if _, err := f.Seek(w.size, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}
	w.f, w.h = f, hashing.NewAsync(h)
	return w, nil
}

// Write implements io.Writer. When the disk is full it drops what was
// written since the upload was last durable and returns an error matching
// storage.ErrNoSpace; the upload resumes from its last state once there is
// space again.
func (w *writer) Write(p []byte) (int, error) {
	if w.failed != nil {
		return 0, w.failed
	}
	n, err := w.f.Write(p)
	if err = diskspace.Classify(err); errors.Is(err, storage.ErrNoSpace) {
		return 0, w.fail(err)
	}
	w.h.Write(p[:n])
	w.size += int64(n)
	if w.size-w.flushed >= writebackStep {
		startWriteback(w.f, w.flushed, w.size-w.flushed)
		w.flushed = w.size
	}
	return n, err
}

func (w *writer) Size() int64 { return w.size }

func (w *writer) State() ([]byte, error) {
	if w.failed != nil {
		return nil, w.failed
	}
	if err := w.f.Sync(); err != nil {
		err = diskspace.Classify(fmt.Errorf("sync upload: %w", err))
		if errors.Is(err, storage.ErrNoSpace) {
			return nil, w.fail(err)
		}
		return nil, err
	}
	hs, err := w.h.Hash().(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("hash state: %w", err)
	}
	st, err := json.Marshal(writerState{Size: w.size, SHA256: hs})
	if err != nil {
		return nil, err
	}
	w.durable, w.resumable = w.size, true
	return st, nil
}

// fail drops the bytes written since the upload was last durable, so a
// full disk keeps none of them, and makes every later call return err. An
// upload with no durable state loses its file: a later Writer creates it
// again. The file is emptied before it is unlinked, since an unlinked file
// keeps its blocks while it is open.
func (w *writer) fail(err error) error {
	w.failed, w.size = err, w.durable
	size := w.durable
	if !w.resumable {
		size = 0
	}
	if terr := os.Truncate(w.path, size); terr != nil && !errors.Is(terr, fs.ErrNotExist) {
		return errors.Join(err, fmt.Errorf("drop partial upload: %w", terr))
	}
	if !w.resumable {
		if rerr := os.Remove(w.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return errors.Join(err, fmt.Errorf("drop partial upload: %w", rerr))
		}
	}
	return err
}

// Commit implements storage.BlobWriter. The content is hashed with d's
// algorithm: SHA-256 was computed while writing; another algorithm re-reads
// the file once. When the disk is full the upload keeps only its durable
// bytes, as after a failed Write, so it can be finished later; any other
// failure discards it.
func (w *writer) Commit(_ context.Context, d digest.Digest) error {
	defer w.h.Close()
	if w.failed != nil {
		_ = w.f.Close()
		return w.failed
	}
	if err := diskspace.Classify(w.commit(d)); err != nil {
		_ = w.f.Close()
		if errors.Is(err, storage.ErrNoSpace) {
			return w.fail(err)
		}
		_ = os.Remove(w.path)
		return err
	}
	return nil
}

func (w *writer) commit(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%s: %w", d, storage.ErrDigestMismatch)
	}
	got := digest.NewDigest(digest.SHA256, w.h.Hash())
	if d.Algorithm() != digest.SHA256 {
		v := d.Algorithm().Digester()
		if _, err := io.Copy(v.Hash(), io.NewSectionReader(w.f, 0, w.size)); err != nil {
			return fmt.Errorf("rehash upload: %w", err)
		}
		got = v.Digest()
	}
	if got != d {
		return fmt.Errorf("got %s, want %s: %w", got, d, storage.ErrDigestMismatch)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("sync upload: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("close upload: %w", err)
	}
	dst := w.s.blobPath(d)
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("blob directory: %w", err)
	}
	// A hard link publishes the blob only if no other upload did first:
	// content-addressed, so the first copy is as good as any.
	switch err := os.Link(w.path, dst); {
	case err == nil:
		w.s.count(1, w.size)
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	if err := os.Remove(w.path); err != nil {
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	return syncDir(dir)
}

func (w *writer) Cancel(context.Context) error {
	w.h.Close()
	_ = w.f.Close()
	if err := os.Remove(w.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cancel upload: %w", err)
	}
	return nil
}

func (w *writer) Close() error {
	w.h.Close()
	return w.f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// PurgeUploads implements storage.UploadPurger.
func (s *Store) PurgeUploads(ctx context.Context, cutoff time.Time, keep func(id string) bool) error {
	entries, err := os.ReadDir(s.uploadsDir())
	if err != nil {
		return fmt.Errorf("purge uploads: %w", err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(cutoff) || keep(e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(s.uploadsDir(), e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("purge upload %s: %w", e.Name(), err)
		}
	}
	return nil
}
