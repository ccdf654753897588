package api

import (
	"net/http"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// finishedUploads remembers the upload sessions that committed, so that a
// client that gave up waiting for its final PUT and sends it again gets the
// same 201 instead of 404 BLOB_UPLOAD_UNKNOWN: the final PUT is idempotent.
// A record is kept as long as an idle session would be (Config.UploadTTL);
// it lives in this member's memory, like the session's lock, since every
// request for a session reaches the member that holds it. Its methods may
// be called concurrently.
type finishedUploads struct {
	mu   sync.Mutex
	done map[string]finishedUpload
}

// finishedUpload is the outcome of a committed session.
type finishedUpload struct {
	repo string
	d    digest.Digest
	at   time.Time
}

func newFinishedUploads() *finishedUploads {
	return &finishedUploads{done: map[string]finishedUpload{}}
}

// add records that session id of repo committed as blob d.
func (f *finishedUploads) add(id, repo string, d digest.Digest, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done[id] = finishedUpload{repo: repo, d: d, at: at}
}

// get returns the outcome of session id, if it committed.
func (f *finishedUploads) get(id string) (finishedUpload, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.done[id]
	return u, ok
}

// expire forgets the sessions that committed before cutoff.
func (f *finishedUploads) expire(cutoff time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, u := range f.done {
		if u.at.Before(cutoff) {
			delete(f.done, id)
		}
	}
}

// finishAgain answers a final PUT of session id, which committed as done:
// 201 with the same Location and Docker-Content-Digest when it names the
// same repository and digest. Another digest is refused: the session's
// bytes are the blob they are, and nothing of the retry is stored.
func finishAgain(w http.ResponseWriter, r *http.Request, repo, id string, done finishedUpload) error {
	if repo != done.repo {
		return newError(http.StatusNotFound, codeBlobUploadUnknown, "upload %q unknown in %s", truncate(id), repo)
	}
	d, err := parseDigest(r.URL.Query().Get("digest"))
	if err != nil {
		return err
	}
	if d != done.d {
		return newError(http.StatusBadRequest, codeDigestInvalid,
			"upload %q was completed as %s, not %s", truncate(id), done.d, d)
	}
	blobCreated(w, repo, d)
	return nil
}
