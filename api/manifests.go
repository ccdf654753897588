package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/oci"
	"github.com/atollhq/atoll/storage"
)

// reference returns the validated manifest reference of the request.
func reference(r *http.Request) (oci.Reference, error) {
	s := r.PathValue(pathReference)
	ref, ok := oci.ParseReference(s)
	switch {
	case ok:
		return ref, nil
	case strings.Contains(s, ":"):
		return ref, newError(http.StatusBadRequest, codeDigestInvalid, "invalid digest %q", truncate(s))
	}
	return ref, newError(http.StatusBadRequest, codeManifestInvalid, "invalid tag %q", truncate(s))
}

// manifestStore is what the manifest handlers need of the metadata: the
// manifests and tags, and the links a pushed manifest's blobs must have.
type manifestStore interface {
	storage.Manifests
	BlobLinked(repo string, d digest.Digest) bool
}

// manifestHandler serves manifests: GET, HEAD, PUT and DELETE
// /v2/<name>/manifests/<reference>. Its methods may be called concurrently.
type manifestHandler struct {
	meta          manifestStore
	upstream      Upstream
	claims        Claims
	policy        Policy
	events        emitter
	maxSize       int64
	disableDelete bool
}

// resolve finds the manifest a reference names in repo.
func (h *manifestHandler) resolve(ctx context.Context, repo string, ref oci.Reference) (*storage.Manifest, error) {
	if h.upstream.Proxied(repo) {
		return h.upstream.Manifest(ctx, repo, ref)
	}
	d := ref.Digest
	if d == "" {
		var err error
		if d, err = h.meta.Tag(repo, ref.Tag); err != nil {
			return nil, fmt.Errorf("tag %s in %s: %w", ref.Tag, repo, err)
		}
	}
	m, err := h.meta.Manifest(repo, d)
	if err != nil {
		return nil, fmt.Errorf("manifest %s in %s: %w", d, repo, err)
	}
	return m, nil
}

// getManifest implements GET and HEAD /v2/<name>/manifests/<reference>
// ("Pulling manifests"). The manifest is served from memory, exactly as
// pushed, when the Accept header allows its media type.
func (h *manifestHandler) getManifest(w http.ResponseWriter, r *http.Request) error {
	repo, err := repoName(r)
	if err != nil {
		return err
	}
	ref, err := reference(r)
	if err != nil {
		return err
	}
	m, err := h.resolve(r.Context(), repo, ref)
	if err != nil {
		return err
	}
	mt := m.Descriptor.MediaType
	if !accepts(r.Header.Values("Accept"), mt) {
		return newError(http.StatusNotFound, codeManifestUnknown,
			"manifest %s is %s, which the Accept header does not allow", m.Descriptor.Digest, mt)
	}
	setManifestHeaders(w.Header(), mt, len(m.Content), m.Descriptor.Digest)
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	if _, err := w.Write(m.Content); err != nil {
		return err
	}
	if h.events.enabled() {
		t := EventTarget{MediaType: mt, Digest: m.Descriptor.Digest, Size: m.Descriptor.Size, Repository: repo, Tag: ref.Tag}
		if parsed, err := oci.Parse(mt, m.Content); err == nil {
			t.References = references(parsed)
		}
		h.events.emit(r, ActionPull, t)
	}
	return nil
}

// setManifestHeaders sets the headers of a manifest response: media type
// mt, size n, digest d. It is on the path of every pull, so it allocates
// twice (the values, and one string the length and the ETag share), where
// Header.Set allocates for each value and canonicalizes the keys (given
// here in canonical form).
func setManifestHeaders(hdr http.Header, mt string, n int, d digest.Digest) {
	var room [96]byte // a sha256 digest's: no allocation but the string
	buf := strconv.AppendInt(room[:0], int64(n), 10)
	digits := len(buf)
	buf = append(append(append(buf, '"'), d...), '"')
	s := string(buf)
	vals := []string{mt, s[:digits], string(d), s[digits:]}
	hdr["Content-Type"] = vals[0:1:1]
	hdr["Content-Length"] = vals[1:2:2]
	hdr["Docker-Content-Digest"] = vals[2:3:3]
	hdr["Etag"] = vals[3:4:4]
}

// accepts reports whether the Accept header values allow media type mt.
// No Accept header allows anything. A value naming mt exactly, the common
// case, is taken without parsing.
func accepts(values []string, mt string) bool {
	if len(values) == 0 {
		return true
	}
	for _, v := range values {
		for v != "" {
			var part string
			part, v, _ = strings.Cut(v, ",")
			part = strings.TrimSpace(part)
			if part == mt {
				return true
			}
			switch t := oci.BaseMediaType(part); t {
			case mt, "*/*", "application/*", "":
				return true
			}
		}
	}
	return false
}

// putManifest implements PUT /v2/<name>/manifests/<reference> ("Pushing
// manifests"). The config, layers and child manifests must be in the
// repository already; a subject need not be.
func (h *manifestHandler) putManifest(w http.ResponseWriter, r *http.Request) error {
	repo, err := repoName(r)
	if err != nil {
		return err
	}
	ref, err := reference(r)
	if err != nil {
		return err
	}
	if err := checkWritable(h.upstream, repo); err != nil {
		return err
	}
	limit := h.maxSize
	if r.ContentLength > limit {
		return newError(http.StatusRequestEntityTooLarge, codeSizeInvalid, "manifest over %d bytes", limit)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return newError(http.StatusBadRequest, codeManifestInvalid, "reading body: %v", err)
	}
	if int64(len(body)) > limit {
		return newError(http.StatusRequestEntityTooLarge, codeSizeInvalid, "manifest over %d bytes", limit)
	}
	m, err := oci.Parse(oci.BaseMediaType(r.Header.Get("Content-Type")), body)
	if err != nil {
		return err
	}
	d := digest.FromBytes(body)
	if ref.Digest != "" {
		if d = ref.Digest.Algorithm().FromBytes(body); d != ref.Digest {
			return newError(http.StatusBadRequest, codeDigestInvalid, "content has digest %s, not %s", d, ref.Digest)
		}
	}
	if err := h.storeManifest(r.Context(), repo, m, d, body, ref.Tag); err != nil {
		return err
	}
	h.events.emit(r, ActionPush, EventTarget{MediaType: m.MediaType, Digest: d, Size: int64(len(body)), Repository: repo, Tag: ref.Tag, References: references(m)})
	hdr := w.Header()
	hdr.Set("Location", "/v2/"+repo+"/manifests/"+d.String())
	hdr.Set("Docker-Content-Digest", d.String())
	if m.Subject != nil {
		hdr.Set("OCI-Subject", m.Subject.Digest.String())
	}
	hdr.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// storeManifest checks what manifest m (digest d, exactly body) needs and
// stores it in repo, tagged tag if not empty. Its blobs are held against
// garbage collection from the check until the manifest is stored.
func (h *manifestHandler) storeManifest(ctx context.Context, repo string, m *oci.Manifest, d digest.Digest, body []byte, tag string) error {
	blobs := m.Blobs()
	ds := make([]digest.Digest, len(blobs))
	for i, b := range blobs {
		ds[i] = b.Digest
	}
	missing, done, err := h.claims.Reference(ctx, repo, ds)
	if err != nil {
		return err
	}
	stored := false
	defer func() { done(stored) }()
	if len(missing) > 0 {
		return blobUnknown(missing[0], "blob")
	}
	if err := h.checkReferences(repo, m); err != nil {
		return err
	}
	release, err := h.policy.AllowManifest(ctx, repo, tag, d, int64(len(body)))
	if err != nil {
		return err
	}
	defer release()
	sm := &storage.Manifest{Descriptor: m.Descriptor(d, int64(len(body))), Content: body}
	if m.Subject != nil {
		sm.Subject = m.Subject.Digest
	}
	if err := h.meta.PutManifest(ctx, repo, sm, tag); err != nil {
		return err
	}
	stored = true
	return nil
}

// checkReferences fails with MANIFEST_BLOB_UNKNOWN when a blob or child
// manifest that m needs is not in repo.
func (h *manifestHandler) checkReferences(repo string, m *oci.Manifest) error {
	for _, b := range m.Blobs() {
		if !h.meta.BlobLinked(repo, b.Digest) {
			return blobUnknown(b.Digest, "blob")
		}
	}
	for _, c := range m.Manifests {
		if _, err := h.meta.Manifest(repo, c.Digest); err != nil {
			return blobUnknown(c.Digest, "manifest")
		}
	}
	return nil
}

func blobUnknown(d digest.Digest, what string) error {
	e := newError(http.StatusBadRequest, codeManifestBlobUnknown, "%s %s is not in the repository", what, d)
	e.Detail = map[string]string{"digest": d.String()}
	return e
}

// deleteManifest implements DELETE /v2/<name>/manifests/<reference>
// ("Deleting manifests", "Deleting tags"): by digest it removes the
// manifest and its tags from the repository; by tag, only the tag.
func (h *manifestHandler) deleteManifest(w http.ResponseWriter, r *http.Request) error {
	repo, err := repoName(r)
	if err != nil {
		return err
	}
	ref, err := reference(r)
	if err != nil {
		return err
	}
	if h.disableDelete {
		return errDeleteDisabled
	}
	if err := checkWritable(h.upstream, repo); err != nil {
		return err
	}
	if err := h.policy.AllowDelete(r.Context(), repo, ref.Tag, ref.Digest); err != nil {
		return err
	}
	if ref.Digest != "" {
		err = h.meta.DeleteManifest(r.Context(), repo, ref.Digest)
	} else {
		err = h.meta.DeleteTag(r.Context(), repo, ref.Tag)
	}
	if err != nil {
		return err
	}
	h.events.emit(r, ActionDelete, EventTarget{Digest: ref.Digest, Repository: repo, Tag: ref.Tag})
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
