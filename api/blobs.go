package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// CacheHits is an optional capability of an Upstream: it is told of each
// blob of a proxied repository served from what is cached, without asking
// Blob. It must not block.
type CacheHits interface {
	BlobHit(repo string, d digest.Digest)
}

// blobHandler serves blobs: GET, HEAD and DELETE /v2/<name>/blobs/<digest>.
// Its methods may be called concurrently.
type blobHandler struct {
	blobs         storage.BlobStore
	links         storage.Links
	upstream      Upstream
	claims        Claims
	remote        Remote // nil on a node of its own
	events        emitter
	disableDelete bool
}

// getBlob implements GET and HEAD /v2/<name>/blobs/<digest> ("Pulling
// blobs", "Checking if content exists"): Range requests get 206 with
// Content-Range. A blob is readable only through a repository linking it.
func (h *blobHandler) getBlob(w http.ResponseWriter, r *http.Request) error {
	repo, d, err := repoAndDigest(r)
	if err != nil {
		return err
	}
	proxied := h.upstream.Proxied(repo)
	if !h.links.BlobLinked(repo, d) {
		if !proxied {
			return fmt.Errorf("%s in %s: %w", d, repo, storage.ErrBlobUnknown)
		}
		if err := h.upstream.Blob(r.Context(), repo, d); err != nil {
			return err
		}
	} else if hits, ok := h.upstream.(CacheHits); ok && proxied {
		hits.BlobHit(repo, d)
	}
	// A HEAD is how a pushing client learns it need not upload the blob;
	// a blob being collected is reported absent, so it is uploaded again.
	if r.Method == http.MethodHead && !h.claims.Told(repo, d) {
		return fmt.Errorf("%s in %s is being collected: %w", d, repo, storage.ErrBlobUnknown)
	}
	if u, ok := h.blobs.(storage.URLSigner); ok && r.Method == http.MethodGet {
		if url, err := u.URLFor(r.Context(), d, 20*time.Minute); err == nil {
			w.Header().Set("Docker-Content-Digest", d.String())
			http.Redirect(w, r, url, http.StatusTemporaryRedirect)
			h.events.emit(r, ActionPull, EventTarget{MediaType: "application/octet-stream", Digest: d, Repository: repo})
			return nil
		}
	}
	b, err := h.blobs.Open(r.Context(), d)
	if errors.Is(err, storage.ErrBlobUnknown) && h.remote != nil {
		return h.remote.ServeBlob(w, r, d)
	}
	if err != nil {
		return err
	}
	defer b.Close()
	ServeBlobContent(w, r, d, b)
	if r.Method == http.MethodHead {
		return nil
	}
	h.events.emit(r, ActionPull, EventTarget{MediaType: "application/octet-stream", Digest: d, Size: b.Size(), Repository: repo})
	return nil
}

// ServeBlobContent answers a GET or HEAD of blob d with its bytes, b, as
// every member answers it, so that a read through any member is the
// owner's: Docker-Content-Digest, ETag (the quoted digest, which never
// changes), Cache-Control, Last-Modified, and http.ServeContent's range
// (206, multipart/byteranges, 416) and conditional (304, If-Range)
// semantics.
//
// The bytes go out in writes of up to 1 MiB (largeWrites), not through
// sendfile(2): measured on loopback with a Go client (1 GiB blob, 7-9
// alternating rounds), sendfile gave 683-812 MB/s, 32 KiB writes (what
// io.Copy and Distribution do) 832-853, 256 KiB-1 MiB writes 923-1248.
func ServeBlobContent(w http.ResponseWriter, r *http.Request, d digest.Digest, b storage.Blob) {
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set("Cache-Control", "max-age=31536000")
	buf := make([]byte, min(max(b.Size(), 1), maxWrite))
	http.ServeContent(largeWrites{w, buf}, r, "", b.ModTime(), b)
}

// maxWrite bounds the writes of a blob's bytes to a client.
const maxWrite = 1 << 20

// largeWrites makes http.ServeContent's copy of a body (io.CopyN, which
// asks its writer's ReadFrom) go in writes of len(buf), through the
// writer's Write so that every middleware counts them.
type largeWrites struct {
	http.ResponseWriter
	buf []byte
}

func (w largeWrites) ReadFrom(r io.Reader) (int64, error) {
	return io.CopyBuffer(writeOnly{w.ResponseWriter}, r, w.buf)
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (w largeWrites) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeOnly hides a writer's ReadFrom, so io.CopyBuffer uses its buffer.
type writeOnly struct{ io.Writer }

// deleteBlob implements DELETE /v2/<name>/blobs/<digest> ("Deleting
// blobs"): the repository's link goes at once; the bytes go with garbage
// collection once no repository links them.
func (h *blobHandler) deleteBlob(w http.ResponseWriter, r *http.Request) error {
	repo, d, err := repoAndDigest(r)
	if err != nil {
		return err
	}
	if h.disableDelete {
		return errDeleteDisabled
	}
	if err := checkWritable(h.upstream, repo); err != nil {
		return err
	}
	if err := h.links.UnlinkBlob(r.Context(), repo, d); err != nil {
		return err
	}
	h.events.emit(r, ActionDelete, EventTarget{Digest: d, Repository: repo})
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

var errDeleteDisabled = newError(http.StatusMethodNotAllowed, codeUnsupported, "deletes are disabled on this registry")
