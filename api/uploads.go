package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// uploadStore is what the upload handlers keep in the metadata: the
// sessions, and the links a finished upload makes.
type uploadStore interface {
	storage.Uploads
	LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error
}

// uploadHandler serves blob uploads: POST /v2/<name>/blobs/uploads/ (a new
// session, a monolithic upload or a mount) and the session's GET, PATCH,
// PUT and DELETE. Its methods may be called concurrently.
type uploadHandler struct {
	blobs    storage.BlobStore
	meta     uploadStore
	sessions *uploadSessions
	mounts   *mounter
	upstream Upstream
	claims   Claims
	policy   Policy
	remote   Remote // nil on a node of its own
	newID    func() string
	events   emitter
}

// startUpload implements POST /v2/<name>/blobs/uploads/: a cross-repository
// mount (?mount=&from=, or anonymous without from), a monolithic upload
// (?digest=, body is the blob), or a new upload session.
func (h *uploadHandler) startUpload(w http.ResponseWriter, r *http.Request) error {
	repo, err := repoName(r)
	if err != nil {
		return err
	}
	if err := checkWritable(h.upstream, repo); err != nil {
		return err
	}
	q := r.URL.Query()
	if q.Has("mount") {
		mounted, err := h.mounts.mount(r.Context(), repo, q.Get("mount"), q.Get("from"), q.Has("from"))
		if err != nil || mounted != "" {
			if err == nil {
				blobCreated(w, repo, mounted)
				h.events.emit(r, ActionMount, EventTarget{MediaType: "application/octet-stream", Digest: mounted, Repository: repo, FromRepository: q.Get("from")})
			}
			return err
		}
	}
	if q.Has("digest") {
		d, err := parseDigest(q.Get("digest"))
		if err != nil {
			return err
		}
		return h.monolithic(w, r, repo, d)
	}
	u := &storage.Upload{ID: h.newID(), Repo: repo, Started: time.Now()}
	if err := h.meta.PutUpload(r.Context(), u); err != nil {
		return err
	}
	uploadAccepted(w, http.StatusAccepted, u)
	return nil
}

// monolithic stores the request body as blob d in one request.
func (h *uploadHandler) monolithic(w http.ResponseWriter, r *http.Request, repo string, d digest.Digest) error {
	bw, err := h.writerFor(r.Context(), h.newID(), d)
	if err != nil {
		return err
	}
	if err := copyBody(bw, r, -1); err != nil {
		_ = bw.Cancel(r.Context())
		return err
	}
	// Every byte is in: the commit runs to its end even if the client
	// goes away meanwhile, as a final PUT's does.
	ctx := context.WithoutCancel(r.Context())
	_, done, err := h.claims.Store(ctx, repo, d)
	if err != nil {
		_ = bw.Cancel(ctx)
		return err
	}
	size := bw.Size()
	release, err := h.policy.AllowBlob(ctx, repo, d, size)
	if err != nil {
		done(false)
		_ = bw.Cancel(ctx)
		return err
	}
	defer release()
	if err := bw.Commit(ctx, d); err != nil {
		done(false)
		return err
	}
	if err := h.meta.LinkBlob(ctx, repo, d, size); err != nil {
		done(false)
		return err
	}
	done(true)
	blobCreated(w, repo, d)
	h.events.emit(r, ActionPush, EventTarget{MediaType: "application/octet-stream", Digest: d, Size: r.ContentLength, Repository: repo})
	return nil
}

// patchUpload implements PATCH /v2/<name>/blobs/uploads/<id>: a chunk with
// Content-Range, or the rest of the blob streamed without it. A chunk that
// does not start where the upload ends gets 416.
func (h *uploadHandler) patchUpload(w http.ResponseWriter, r *http.Request) error {
	return h.withUpload(w, r, h.lockWithBody(w, r), func(u *storage.Upload) error {
		if err := h.appendChunk(r, u); err != nil {
			return err
		}
		uploadAccepted(w, http.StatusAccepted, u)
		return nil
	})
}

// finishUpload implements PUT /v2/<name>/blobs/uploads/<id>?digest=, with
// or without a last chunk. On a digest mismatch the upload is discarded.
//
// Once the body is in, the commit (verify, make durable, place on the
// blob's members, link) runs to its end even if the client goes away
// meanwhile, and the session is remembered as finished (CompleteUpload,
// until the upload TTL; uploadfinished.go):
// the client's retry waits on the session's lock for the commit and gets
// the same 201.
func (h *uploadHandler) finishUpload(w http.ResponseWriter, r *http.Request) error {
	repo, id, err := h.uploadID(w, r)
	if err != nil || id == "" {
		return err
	}
	unlock := h.lockWithBody(w, r)(id)
	defer unlock()
	if done, err := h.meta.FinishedUpload(id); err == nil {
		return finishAgain(w, r, repo, id, done)
	}
	u, err := h.sessions.session(repo, id)
	if err != nil {
		return err
	}
	err = h.commitUpload(w, r, u)
	if errors.Is(err, storage.ErrUploadUnknown) {
		// The session outlived its bytes (see uploadSessions.intact): drop it.
		_ = h.meta.DeleteUpload(r.Context(), id)
	}
	return err
}

// commitUpload appends the request's body to upload u and commits it as
// the blob the request names.
func (h *uploadHandler) commitUpload(w http.ResponseWriter, r *http.Request, u *storage.Upload) error {
	d, err := parseDigest(r.URL.Query().Get("digest"))
	if err != nil {
		return err
	}
	length, err := chunkLength(r, u)
	if err != nil {
		return err
	}
	bw, err := h.blobs.Writer(r.Context(), u.ID, u.State)
	if err != nil {
		return err
	}
	if err := copyBody(bw, r, length); err != nil {
		_ = bw.Close()
		return err
	}
	// Every byte is in: from here on the client's connection no longer
	// matters.
	ctx := context.WithoutCancel(r.Context())
	_, done, err := h.claims.Store(ctx, u.Repo, d)
	if err != nil {
		_ = bw.Close()
		return err
	}
	size := bw.Size()
	release, err := h.policy.AllowBlob(ctx, u.Repo, d, size)
	if err != nil {
		done(false)
		// Refused: nothing of the upload is kept.
		_ = bw.Cancel(ctx)
		_ = h.meta.DeleteUpload(ctx, u.ID)
		return err
	}
	defer release()
	if err := bw.Commit(ctx, d); err != nil {
		done(false)
		if errors.Is(err, storage.ErrDigestMismatch) {
			_ = h.meta.DeleteUpload(ctx, u.ID)
		}
		return err
	}
	if err := h.meta.CompleteUpload(ctx, u.ID, d, size); err != nil {
		done(false)
		return err
	}
	done(true)
	blobCreated(w, u.Repo, d)
	h.events.emit(r, ActionPush, EventTarget{MediaType: "application/octet-stream", Digest: d, Size: size, Repository: u.Repo})
	return nil
}

// uploadStatus implements GET /v2/<name>/blobs/uploads/<id>. It takes no
// lock, so it answers while a PATCH on the session is in flight: with the
// last offset made durable, which a PATCH records only once its bytes are.
func (h *uploadHandler) uploadStatus(w http.ResponseWriter, r *http.Request) error {
	repo, id, err := h.uploadID(w, r)
	if err != nil || id == "" {
		return err
	}
	u, err := h.sessions.session(repo, id)
	if err != nil {
		return err
	}
	uploadAccepted(w, http.StatusNoContent, u)
	return nil
}

// cancelUpload implements DELETE /v2/<name>/blobs/uploads/<id>. A PATCH or
// PUT in flight on the session is cut off, so the DELETE does not wait for
// a slow client.
func (h *uploadHandler) cancelUpload(w http.ResponseWriter, r *http.Request) error {
	return h.withUpload(w, r, h.sessions.locks.lockToCancel, func(u *storage.Upload) error {
		if err := h.sessions.discard(r.Context(), u); err != nil {
			return err
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// withUpload runs fn on the request's upload session, holding the lock
// that lock takes (one of uploadLocks' methods).
func (h *uploadHandler) withUpload(w http.ResponseWriter, r *http.Request, lock func(id string) (unlock func()), fn func(u *storage.Upload) error) error {
	repo, id, err := h.uploadID(w, r)
	if err != nil || id == "" {
		return err
	}
	unlock := lock(id)
	defer unlock()
	u, err := h.sessions.session(repo, id)
	if err != nil {
		return err
	}
	err = fn(u)
	if errors.Is(err, storage.ErrUploadUnknown) {
		// The session outlived its bytes (see uploadSessions.intact): drop it.
		_ = h.meta.DeleteUpload(r.Context(), id)
	}
	return err
}

// uploadID returns the request's repository and upload id, or id "" when
// the upload lives on another member and the request went there.
func (h *uploadHandler) uploadID(w http.ResponseWriter, r *http.Request) (repo, id string, err error) {
	if repo, err = repoName(r); err != nil {
		return "", "", err
	}
	id = r.PathValue(pathUploadID)
	if h.remote != nil {
		if forwarded, err := h.remote.ForwardUpload(w, r, id); forwarded || err != nil {
			return "", "", err
		}
	}
	return repo, id, nil
}

// lockWithBody returns the lock of a request whose body goes into the
// upload: a DELETE of the upload aborts that body.
func (h *uploadHandler) lockWithBody(w http.ResponseWriter, r *http.Request) func(id string) (unlock func()) {
	return func(id string) func() { return h.sessions.locks.lockWithBody(id, bodyOf(w, r)) }
}

// chunkLength checks the request's Content-Range against upload u and
// returns the chunk's length, or -1 when the body runs to its end.
func chunkLength(r *http.Request, u *storage.Upload) (int64, error) {
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		return -1, nil
	}
	start, end, err := contentRange(cr)
	if err != nil {
		return 0, newError(http.StatusBadRequest, codeBlobUploadInvalid, "%v", err)
	}
	if start != u.Size {
		e := newError(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid,
			"chunk starts at %d, upload is at %d", start, u.Size)
		e.Header = http.Header{"Range": {rangeHeader(u.Size)}, "Location": {uploadLocation(u)}}
		return 0, e
	}
	length := end - start + 1
	if length <= 0 { // end - start overflowed
		return 0, newError(http.StatusBadRequest, codeBlobUploadInvalid, "Content-Range %q is too large", truncate(cr))
	}
	if r.ContentLength >= 0 && r.ContentLength != length {
		return 0, newError(http.StatusBadRequest, codeSizeInvalid,
			"Content-Length %d does not match Content-Range %q", r.ContentLength, cr)
	}
	return length, nil
}

// appendChunk writes the request body at the end of upload u and records
// the new state. On any error u and its stored state are unchanged.
func (h *uploadHandler) appendChunk(r *http.Request, u *storage.Upload) error {
	length, err := chunkLength(r, u)
	if err != nil {
		return err
	}
	bw, err := h.blobs.Writer(r.Context(), u.ID, u.State)
	if err != nil {
		return err
	}
	defer bw.Close()
	if err := copyBody(bw, r, length); err != nil {
		return err
	}
	state, err := bw.State()
	if err != nil {
		return err
	}
	next := *u
	next.Size, next.State, next.Updated = bw.Size(), state, time.Now()
	if err := h.meta.PutUpload(r.Context(), &next); err != nil {
		return err
	}
	*u = next
	return nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// copyBody copies the request body to dst: exactly length bytes, or all of
// it when length < 0.
func copyBody(dst io.Writer, r *http.Request, length int64) error {
	body := &bodyReader{r: r.Body}
	src := io.Reader(body)
	if length >= 0 {
		src = io.LimitReader(body, length)
	}
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	n, err := io.CopyBuffer(dst, src, *buf)
	if err != nil && !errors.Is(err, body.err) {
		return err // the registry's storage (full, failing), not the client's body
	}
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return newError(http.StatusRequestEntityTooLarge, codeSizeInvalid, "body too large")
		}
		if errors.Is(err, errBodyIdle) {
			return newError(http.StatusRequestTimeout, codeBlobUploadInvalid, "%v", err)
		}
		if errors.Is(err, errBodyAborted) {
			return newError(http.StatusNotFound, codeBlobUploadUnknown, "upload cancelled by a DELETE")
		}
		return newError(http.StatusBadRequest, codeBlobUploadInvalid, "reading body: %v", err)
	}
	if length >= 0 && n != length {
		return newError(http.StatusBadRequest, codeBlobUploadInvalid, "body ended after %d of %d bytes", n, length)
	}
	return nil
}

// bodyReader remembers the error reading the request body, to tell it from
// an error writing the bytes.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func uploadLocation(u *storage.Upload) string {
	return "/v2/" + u.Repo + "/blobs/uploads/" + u.ID
}

// rangeHeader is the Range of an upload holding size bytes ("0-0" when
// empty, as registry:2 answers and clients expect).
func rangeHeader(size int64) string {
	return "0-" + strconv.FormatInt(max(size-1, 0), 10)
}

func uploadAccepted(w http.ResponseWriter, status int, u *storage.Upload) {
	h := w.Header()
	h.Set("Location", uploadLocation(u))
	h.Set("Range", rangeHeader(u.Size))
	h.Set("Docker-Upload-UUID", u.ID)
	h.Set("Content-Length", "0")
	w.WriteHeader(status)
}

func blobCreated(w http.ResponseWriter, repo string, d digest.Digest) {
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/blobs/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}
