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
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/diskspace"
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
	f    *uploadFile
	p    *pipeline
	size int64
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

// uploadFile is an upload's open file.
type uploadFile struct {
	*os.File
	// direct says the file is open for direct I/O. Once the pipeline
	// runs, only its store goroutine reads or changes it.
	direct bool
}

// writeAt writes b at off, both multiples of align. A filesystem that
// took O_DIRECT at open but refuses a direct write gets it buffered.
func (f *uploadFile) writeAt(b []byte, off int64) error {
	_, err := f.WriteAt(b, off)
	if f.fallBack(err) {
		_, err = f.WriteAt(b, off)
	}
	if err == nil && !f.direct {
		startWriteback(f.File, off, int64(len(b)))
	}
	return err
}

// fallBack turns direct I/O off when err is the filesystem refusing it
// (EINVAL), and says whether the caller should try again, buffered.
func (f *uploadFile) fallBack(err error) bool {
	return err != nil && f.direct && errors.Is(err, syscall.EINVAL) && f.buffered() == nil
}

// readHead reads len(b) bytes at off into b, reading a whole aligned
// block (b's capacity holds one) as direct I/O requires; where the
// filesystem refuses even that, the file goes buffered.
func (f *uploadFile) readHead(b []byte, off int64) error {
	n, err := f.ReadAt(b[:align], off)
	if f.fallBack(err) {
		n, err = f.ReadAt(b[:align], off)
	}
	if n >= len(b) && (err == nil || errors.Is(err, io.EOF)) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read the upload's last block: %w", err)
}

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
		w.size, w.durable, w.resumable = st.Size, st.Size, true
		flags = os.O_RDWR
	}
	f, err := openUpload(path, flags)
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
	p, err := newPipeline(h, w.size, f.readHead, f.writeAt, s.chunks)
	if err == nil && !p.direct && f.direct {
		if err = f.buffered(); err != nil {
			p.close()
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}
	w.f, w.p = f, p
	return w, nil
}

// Write implements io.Writer. The bytes are stored and hashed behind it,
// so a failure to store them is returned by a later Write, ReadFrom,
// State or Commit. When the disk is full the writer drops what was
// written since the upload was last durable and returns an error
// matching storage.ErrNoSpace; the upload resumes from its last state
// once there is space again.
func (w *writer) Write(p []byte) (int, error) {
	if w.failed != nil {
		return 0, w.failed
	}
	if err := w.p.write(p); err != nil {
		return 0, w.storeFailed(err)
	}
	w.size += int64(len(p))
	return len(p), nil
}

// ReadFrom implements io.ReaderFrom, which io.Copy prefers to Write: r is
// read straight into the buffers that are hashed and stored, so the bytes
// are not copied once more. r's error is returned as it is; failures to
// store are as for Write.
func (w *writer) ReadFrom(r io.Reader) (int64, error) {
	if w.failed != nil {
		return 0, w.failed
	}
	n, err := w.p.readFrom(r)
	w.size += n
	if ferr := w.p.failure(); ferr != nil {
		return n, w.storeFailed(ferr)
	}
	return n, err
}

// storeFailed handles err, a failure to store the upload's bytes.
func (w *writer) storeFailed(err error) error {
	err = diskspace.Classify(fmt.Errorf("write upload: %w", err))
	if errors.Is(err, storage.ErrNoSpace) {
		return w.fail(err)
	}
	return err
}

// flush stores and hashes everything written, and trims the padding of
// the last block off the file.
func (w *writer) flush() error {
	if err := w.p.flush(); err != nil {
		return fmt.Errorf("write upload: %w", err)
	}
	if w.size%align != 0 {
		if err := w.f.Truncate(w.size); err != nil {
			return fmt.Errorf("write upload: %w", err)
		}
	}
	return nil
}

func (w *writer) Size() int64 { return w.size }

func (w *writer) State() ([]byte, error) {
	if w.failed != nil {
		return nil, w.failed
	}
	err := w.flush()
	if err == nil {
		err = w.f.Sync()
	}
	if err != nil {
		err = diskspace.Classify(fmt.Errorf("sync upload: %w", err))
		if errors.Is(err, storage.ErrNoSpace) {
			return nil, w.fail(err)
		}
		return nil, err
	}
	hs, err := w.p.hash().(encoding.BinaryMarshaler).MarshalBinary()
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
	w.p.close() // no write may land after the truncation
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
	if w.failed != nil {
		_ = w.f.Close()
		return w.failed
	}
	err := w.commit(d)
	w.p.close() // before the file is closed: nothing is written after
	if err = diskspace.Classify(err); err != nil {
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
	if err := w.flush(); err != nil {
		return err
	}
	got := digest.NewDigest(digest.SHA256, w.p.hash())
	if d.Algorithm() != digest.SHA256 {
		var err error
		if got, err = w.rehash(d.Algorithm()); err != nil {
			return fmt.Errorf("rehash upload: %w", err)
		}
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

// rehash reads the upload file once more to hash it with a. It opens the
// file again: direct I/O would refuse the reads of an unaligned buffer.
func (w *writer) rehash(a digest.Algorithm) (digest.Digest, error) {
	f, err := os.Open(w.path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	v := a.Digester()
	if _, err := io.Copy(v.Hash(), io.LimitReader(f, w.size)); err != nil {
		return "", err
	}
	return v.Digest(), nil
}

func (w *writer) Cancel(context.Context) error {
	w.p.close()
	_ = w.f.Close()
	if err := os.Remove(w.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cancel upload: %w", err)
	}
	return nil
}

func (w *writer) Close() error {
	w.p.close()
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
