package api

import (
	"net/http"

	"github.com/atollhq/atoll/storage"
)

// A final PUT is idempotent: the store records each session that
// completed (storage.Uploads.CompleteUpload) for as long as an idle
// session would be kept (Config.UploadTTL), on disk, so a client that gave
// up waiting for its final PUT and sends it again, even after a restart,
// gets the same 201 instead of 404 BLOB_UPLOAD_UNKNOWN.

// finishAgain answers a final PUT of session id, which committed as done:
// 201 with the same Location and Docker-Content-Digest when it names the
// same repository and digest. Another digest is refused: the session's
// bytes are the blob they are, and nothing of the retry is stored.
func finishAgain(w http.ResponseWriter, r *http.Request, repo, id string, done storage.FinishedUpload) error {
	if repo != done.Repo {
		return newError(http.StatusNotFound, codeBlobUploadUnknown, "upload %q unknown in %s", truncate(id), repo)
	}
	d, err := parseDigest(r.URL.Query().Get("digest"))
	if err != nil {
		return err
	}
	if d != done.Digest {
		return newError(http.StatusBadRequest, codeDigestInvalid,
			"upload %q was completed as %s, not %s", truncate(id), done.Digest, d)
	}
	blobCreated(w, repo, d)
	return nil
}
