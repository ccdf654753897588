package s3

import (
	"context"
	"crypto/sha256"
	_ "crypto/sha512" // digest.SHA512
	"encoding"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/internal/hashing"
)

// writerState is what survives between writers of one upload: the parts
// sent, the generation of the tail object holding the bytes after them, and
// the SHA-256 state after exactly Size bytes.
type writerState struct {
	Size     int64  `json:"size"`
	SHA256   []byte `json:"sha256"`
	UploadID string `json:"uploadId,omitempty"` // S3's, "" until the first part
	Parts    []part `json:"parts,omitempty"`
	Gen      int    `json:"gen"` // <root>/uploads/<id>/tail.<gen>
}

// part is one part sent to S3.
type part struct {
	Number int    `json:"n"`
	Size   int64  `json:"size"`
	ETag   string `json:"etag"`
	CRC32C string `json:"crc32c"`
}

// writer is a storage.BlobWriter. Bytes fill buf; a full buf is sent as the
// next part on its own goroutine while the next buffer fills, up to
// maxFlights parts at a time (one stream to S3 runs at a fraction of what
// the bucket takes). A part's buffer goes back to the pool once sent, so
// an upload whose client stalls holds one part, and one that runs holds
// maxFlights+1, in memory or spilled (partbuf.go).
type writer struct {
	up *uploads // the upload's parts, tails and cleanup
	bl *blobs   // where Commit stores the blob
	id string
	// ctx carries part uploads; Close, Cancel and Commit cancel it when
	// done. It does not end with the request that opened the writer: a
	// part in flight still lands, and State can record it.
	ctx    context.Context
	cancel context.CancelFunc

	st      writerState // parts sent (in order) and tail generation
	size    int64
	h       *hashing.Async
	buf     *partBuf  // bytes after the parts sent or in flight
	flights []*flight // the parts being sent, in order
	err     error     // sticky: a part failed, or the writer is released
}

// flight is a part being sent.
type flight struct {
	done chan struct{}
	part part
	err  error
}

// maxFlights is how many parts of an upload are sent at a time.
const maxFlights = 4

// smallTail is how large buf grows before it takes a full part buffer, so
// small blobs (image configs, small layers) never hold PartSize bytes.
const smallTail = 1 << 20

var errReleased = errors.New("upload writer already closed")

// writers open the writers of uploads: each streams to S3 as a multipart
// upload (see writer). Its methods may be called concurrently.
type writers struct {
	uploads *uploads
	blobs   *blobs
}

// PartBuffers reports the uploads' part buffers out: in memory, within the
// store's budget, and spilled to local disk past it.
func (ws *writers) PartBuffers() (inMemory, spilled int) {
	p := ws.uploads.parts
	return len(p.tokens), int(p.spilled.Load())
}

// Writer implements storage.BlobStore. A new upload (nil state) touches S3
// only once it has a part to send or a State to record. A resumed one reads
// the tail its state names: data written after that State is dropped, and a
// cancelled or committed upload gives ErrUploadUnknown.
func (ws *writers) Writer(ctx context.Context, id string, state []byte) (storage.BlobWriter, error) {
	if err := checkUploadID(id); err != nil {
		return nil, err
	}
	h := sha256.New()
	w := &writer{up: ws.uploads, bl: ws.blobs, id: id, buf: &partBuf{}}
	if state != nil {
		if err := json.Unmarshal(state, &w.st); err != nil {
			return nil, fmt.Errorf("upload %s state: %w", id, err)
		}
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(w.st.SHA256); err != nil {
			return nil, fmt.Errorf("upload %s hash state: %w", id, err)
		}
		tail, err := ws.uploads.readTail(ctx, id, w.st)
		if err != nil {
			return nil, err
		}
		w.size, w.buf = w.st.Size, tail
	}
	w.ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	w.h = hashing.NewAsync(h)
	return w, nil
}

func (w *writer) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if w.err != nil {
			return written, w.err
		}
		if w.buf.len() == w.up.cfg.PartSize {
			if err := w.flush(); err != nil {
				return written, err
			}
		}
		n := int(min(int64(len(p)), w.up.cfg.PartSize-w.buf.len()))
		if err := w.reserve(n); err != nil {
			return written, err
		}
		if _, err := w.buf.Write(p[:n]); err != nil {
			w.err = err // buf may hold part of p: the writer is done, a new one resumes from the last State
			return written, err
		}
		w.h.Write(p[:n])
		w.size += int64(n)
		written += n
		p = p[n:]
	}
	return written, nil
}

// reserve makes room for n more bytes in buf. Part buffers come from the
// store's pool; a blob smaller than smallTail never takes one, but a
// buffer for small blobs.
func (w *writer) reserve(n int) error {
	if w.buf.room(n) {
		return nil
	}
	need := len(w.buf.b) + n
	if need <= smallTail && w.st.UploadID == "" {
		w.buf.b = append(w.up.parts.tail(need), w.buf.b...)
		return nil
	}
	pb, err := w.up.parts.get()
	if err == nil {
		_, err = pb.Write(w.buf.b)
	}
	if err != nil {
		w.up.parts.put(pb)
		w.err = err
		return err
	}
	w.up.parts.put(w.buf)
	w.buf = pb
	return nil
}

// flush starts sending buf as the next part, once fewer than maxFlights
// are being sent.
func (w *writer) flush() error {
	if len(w.flights) == maxFlights {
		w.land()
	}
	if w.err != nil {
		return w.err
	}
	if w.st.UploadID == "" {
		uploadID, err := w.up.newMultipart(w.ctx, w.id)
		if err != nil {
			w.err = err
			return err
		}
		w.st.UploadID = uploadID
	}
	f := &flight{done: make(chan struct{})}
	ctx, id, uploadID, number := w.ctx, w.id, w.st.UploadID, len(w.st.Parts)+len(w.flights)+1
	buf, parts := w.buf, w.up.parts
	go func() {
		defer close(f.done)
		f.part, f.err = w.up.sendPart(ctx, id, uploadID, number, buf)
		parts.put(buf)
	}()
	w.flights = append(w.flights, f)
	w.buf = &partBuf{} // reserve takes a part buffer
	return nil
}

// land waits for the oldest part being sent and records it; after a
// failed one, no later part is recorded.
func (w *writer) land() {
	f := w.flights[0]
	<-f.done
	w.flights = w.flights[1:]
	if f.err != nil && w.err == nil {
		w.err = f.err
	}
	if w.err == nil {
		w.st.Parts = append(w.st.Parts, f.part)
	}
}

// wait waits for every part being sent and records them.
func (w *writer) wait() error {
	for len(w.flights) > 0 {
		w.land()
	}
	return w.err
}

// sendBuf sends buf as a part and waits for it.
func (w *writer) sendBuf() error {
	if err := w.flush(); err != nil {
		return err
	}
	return w.wait()
}

func (w *writer) Size() int64 { return w.size }

// State implements storage.BlobWriter: it waits for the parts being sent,
// sends buf as a part if it may be one (S3 parts but the last are at least
// 5 MiB), and records the rest as tail object number Gen+1. The previous
// tail stays, in case the caller loses this state; older ones go.
func (w *writer) State() ([]byte, error) {
	if err := w.wait(); err != nil {
		return nil, err
	}
	if w.buf.len() >= minPartSize {
		if err := w.sendBuf(); err != nil {
			return nil, err
		}
	}
	gen := w.st.Gen + 1
	if err := w.up.putTail(w.ctx, w.id, gen, w.buf); err != nil {
		return nil, err
	}
	if gen > 2 {
		w.up.removeTail(w.ctx, w.id, gen-2)
	}
	w.st.Gen = gen
	hs, err := w.h.Hash().(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("hash state: %w", err)
	}
	st := w.st
	st.Size, st.SHA256 = w.size, hs
	return json.Marshal(st)
}

// Commit implements storage.BlobWriter. SHA-256 was computed while writing;
// another algorithm re-reads the content once. Whatever the outcome, the
// upload is gone afterwards.
func (w *writer) Commit(ctx context.Context, d digest.Digest) error {
	if errors.Is(w.err, errReleased) {
		return w.err
	}
	err := w.commit(ctx, d)
	w.release()
	w.discard()
	return err
}

func (w *writer) commit(ctx context.Context, d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%s: %w", d, storage.ErrDigestMismatch)
	}
	if err := w.wait(); err != nil {
		return err
	}
	if d.Algorithm() == digest.SHA256 {
		if err := match(digest.NewDigest(digest.SHA256, w.h.Hash()), d); err != nil {
			return err
		}
	}
	if w.st.UploadID == "" {
		return w.commitSmall(ctx, d)
	}
	return w.commitMultipart(ctx, d)
}

// commitSmall puts a blob smaller than a part straight at its key.
func (w *writer) commitSmall(ctx context.Context, d digest.Digest) error {
	if d.Algorithm() != digest.SHA256 {
		got, err := d.Algorithm().FromReader(w.buf.reader())
		if err != nil {
			return fmt.Errorf("s3 rehash upload %s: %w", w.id, err)
		}
		if err := match(got, d); err != nil {
			return err
		}
	}
	unlock, err := w.bl.locks.lock(ctx, d)
	if err != nil {
		return err
	}
	defer unlock()
	if exists, err := w.bl.exists(ctx, d); exists || err != nil {
		return err
	}
	if err := w.bl.putBlob(ctx, d, w.buf); err != nil {
		return err
	}
	w.bl.usage.count(1, w.size)
	return nil
}

// commitMultipart sends the last part, completes the multipart upload at
// its upload key and copies it to the blob's key (S3 fixes an upload's key
// when it starts; the digest is known only now).
func (w *writer) commitMultipart(ctx context.Context, d digest.Digest) error {
	if w.buf.len() > 0 {
		if err := w.sendBuf(); err != nil {
			return err
		}
	}
	completed := false
	if d.Algorithm() != digest.SHA256 {
		if err := w.up.completeMultipart(ctx, w.id, w.st); err != nil {
			return err
		}
		completed = true
		got, err := w.up.rehashUpload(ctx, w.id, d.Algorithm())
		if err != nil {
			return err
		}
		if err := match(got, d); err != nil {
			return err
		}
	}
	unlock, err := w.bl.locks.lock(ctx, d)
	if err != nil {
		return err
	}
	defer unlock()
	if exists, err := w.bl.exists(ctx, d); exists || err != nil {
		return err // content-addressed: the blob there is as good as this one
	}
	if !completed {
		if err := w.up.completeMultipart(ctx, w.id, w.st); err != nil {
			return err
		}
	}
	if err := w.bl.copyToBlob(ctx, w.id, d); err != nil {
		return err
	}
	w.bl.usage.count(1, w.size)
	return nil
}

func match(got, want digest.Digest) error {
	if got != want {
		return fmt.Errorf("got %s, want %s: %w", got, want, storage.ErrDigestMismatch)
	}
	return nil
}

// Cancel implements storage.BlobWriter: it aborts the multipart uploads of
// the upload, those of earlier writers that a crash cut off before they
// recorded a State included, and removes every object of the upload. The
// "started" marker goes last: it is how PurgeUploads finds the multipart
// uploads if this fails half-way.
func (w *writer) Cancel(ctx context.Context) error {
	w.release()
	uploads, err := w.up.multipartUploads(ctx, w.id)
	if err != nil {
		return err
	}
	aborted := false
	for _, u := range uploads {
		if err := w.up.abortMultipart(ctx, w.id, u.UploadID); err != nil {
			return err
		}
		aborted = aborted || u.UploadID == w.st.UploadID
	}
	if w.st.UploadID != "" && !aborted { // not listed yet
		if err := w.up.abortMultipart(ctx, w.id, w.st.UploadID); err != nil {
			return err
		}
	}
	return w.up.removeUpload(ctx, w.id)
}

// Close implements storage.BlobWriter. The parts being sent are
// abandoned: everything the last State recorded stays.
func (w *writer) Close() error {
	w.release()
	return nil
}

// release stops the parts being sent and the hash, and returns the buffer.
func (w *writer) release() {
	if errors.Is(w.err, errReleased) {
		return
	}
	w.cancel()
	for _, f := range w.flights {
		<-f.done
	}
	w.flights = nil
	w.h.Close()
	w.up.parts.put(w.buf)
	w.buf = &partBuf{}
	w.err = errReleased
}

// discard removes what is left of the upload after Commit, best effort:
// PurgeUploads removes what this misses.
func (w *writer) discard() {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if w.st.UploadID != "" {
		_ = w.up.abortMultipart(ctx, w.id, w.st.UploadID) // gone once completed
	}
	_ = w.up.removeUpload(ctx, w.id)
}
