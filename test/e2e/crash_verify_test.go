package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// verifyStats counts what one verify pass checked.
type verifyStats struct {
	blobs, manifests, tags, listed int
	bytes                          int64
	unacked, unackedVisible        int
	uploads                        map[string]int // how interrupted uploads ended
}

// verify checks a restarted member against the ledger: interrupted uploads
// resume or restart; acknowledged blobs and manifests are there, byte for
// byte; blobs never acknowledged are absent or whole; every listed tag
// names a complete manifest, and the one the tag history allows.
func verify(t *testing.T, base string, l *ledger) verifyStats {
	c := newClient(base)
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st := verifyStats{uploads: map[string]int{}}
	f := &failures{t: t}
	defer f.flush()

	for _, s := range l.view().sessions {
		how, err := resume(ctx, c, s)
		l.closeSession(s)
		if err != nil {
			f.errorf("interrupted upload %s (%d of %d bytes acknowledged): %v", s.loc, s.acked, len(s.data), err)
			continue
		}
		l.ackBlob(blobKey{s.repo, digest.FromBytes(s.data)}, int64(len(s.data)))
		st.uploads[how]++
	}

	v := l.view()
	var keys []blobKey
	for k, size := range v.blobs {
		keys = append(keys, k)
		st.bytes += size
	}
	st.blobs = len(keys)
	for _, err := range parallel(len(keys), 4, func(i int) error {
		return c.getBlob(ctx, keys[i].repo, keys[i].d, v.blobs[keys[i]])
	}) {
		f.errorf("acknowledged blob lost or damaged: %v", err)
	}

	for k, size := range v.tried {
		if _, ok := v.blobs[k]; ok {
			continue
		}
		st.unacked++
		r, err := c.do(ctx, "HEAD", "/v2/"+k.repo+"/blobs/"+k.d.String(), nil, nil, http.StatusOK, http.StatusNotFound)
		switch {
		case err != nil:
			f.errorf("unacknowledged blob: %v", err)
		case r.status == http.StatusOK:
			st.unackedVisible++
			if r.length != size {
				f.errorf("unacknowledged blob %s in %s is visible with Content-Length %d, want %d", k.d, k.repo, r.length, size)
			} else if err := c.getBlob(ctx, k.repo, k.d, size); err != nil {
				f.errorf("unacknowledged blob visible but not whole: %v", err)
			}
		}
	}

	for k := range v.manifests {
		st.manifests++
		if _, _, err := c.getManifest(ctx, k.repo, k.d.String()); err != nil {
			f.errorf("acknowledged manifest lost: %v", err)
		}
	}

	st.tags, st.listed = checkTags(ctx, f, c, v)
	return st
}

// resume finishes an upload the kill interrupted: from where the registry
// says the session stands, or from scratch if it forgot the session. It
// returns how the upload ended.
func resume(ctx context.Context, c *client, s *session) (string, error) {
	d, size := digest.FromBytes(s.data), int64(len(s.data))
	n, err := c.uploadStatus(ctx, s.loc)
	if err != nil {
		return "", err
	}
	if n < 0 {
		return "restarted after 404", c.pushMonolithic(ctx, s.repo, s.data)
	}
	if n < s.acked || n > size {
		return "", fmt.Errorf("session holds %d bytes", n)
	}
	loc := s.loc
	if n < size {
		loc, err = c.patchChunk(ctx, loc, s.data[n:], n)
	}
	if err == nil {
		err = c.finishUpload(ctx, loc, d, nil, size)
	}
	var se *statusError
	if errors.As(err, &se) && se.status == http.StatusNotFound && strings.Contains(se.body, "BLOB_UPLOAD_UNKNOWN") {
		// GET said the session holds n bytes, then PATCH or PUT said it is
		// unknown: allowed, as a client may always restart an upload.
		return "restarted after 204 then " + se.method + " 404", c.pushMonolithic(ctx, s.repo, s.data)
	}
	return "resumed", err
}

// checkTags walks the catalog and every repository's tag list: each tag
// must name a complete manifest that was pushed to it and was not
// superseded by a later acknowledged push. Each tag with an acknowledged
// push must be listed.
func checkTags(ctx context.Context, f *failures, c *client, v ledgerView) (tags, listed int) {
	var catalog struct{ Repositories []string }
	if err := c.getJSON(ctx, "/v2/_catalog", &catalog); err != nil {
		f.errorf("catalog: %v", err)
	}
	seen := map[tagRef]bool{}
	for _, repo := range catalog.Repositories {
		var list struct{ Tags []string }
		if err := c.getJSON(ctx, "/v2/"+repo+"/tags/list", &list); err != nil {
			f.errorf("tags of %s: %v", repo, err)
			continue
		}
		for _, tag := range list.Tags {
			ref := tagRef{repo, tag}
			seen[ref] = true
			listed++
			body, d, err := c.getManifest(ctx, repo, tag)
			if err != nil {
				f.errorf("listed tag %s:%s: %v", repo, tag, err)
				continue
			}
			if err := complete(ctx, c, repo, body, v.blobs); err != nil {
				f.errorf("listed tag %s:%s names an incomplete manifest %s: %v", repo, tag, d, err)
			}
			if err := tagWinner(v.tags[ref], d); err != nil {
				f.errorf("tag %s:%s: %v", repo, tag, err)
			}
		}
	}
	for ref, puts := range v.tags {
		if slices.ContainsFunc(puts, func(p tagPut) bool { return !p.acked.IsZero() }) {
			tags++
			if !seen[ref] {
				_, _, err := c.getManifest(ctx, ref.repo, ref.tag)
				f.errorf("tag %s:%s had an acknowledged push but is not listed (GET: %v)", ref.repo, ref.tag, err)
			}
		}
	}
	return tags, listed
}

// tagWinner checks that d, which a tag resolves to, was pushed to the tag
// and that no acknowledged push to the tag was sent after d's push was
// acknowledged (an unacknowledged push of d may have landed any time).
func tagWinner(puts []tagPut, d digest.Digest) error {
	var found, unbounded bool
	var latest time.Time
	for _, p := range puts {
		if p.d == d {
			found = true
			unbounded = unbounded || p.acked.IsZero()
			if p.acked.After(latest) {
				latest = p.acked
			}
		}
	}
	if !found {
		return fmt.Errorf("resolves to %s, which was never pushed to it", d)
	}
	for _, p := range puts {
		if !unbounded && !p.acked.IsZero() && p.d != d && p.sent.After(latest) {
			return fmt.Errorf("resolves to %s, but %s was pushed %v after that was acknowledged, and acknowledged too",
				d, p.d, p.sent.Sub(latest))
		}
	}
	return nil
}

// TestTagWinner pins down the rule checkTags applies to a tag's history.
func TestTagWinner(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond) }
	a, b, c := digest.FromString("a"), digest.FromString("b"), digest.FromString("c")
	history := []tagPut{
		{d: a, sent: at(0), acked: at(10)},
		{d: b, sent: at(20), acked: at(30)}, // sent after a was acknowledged
		{d: c, sent: at(25)},                // never acknowledged
	}
	for _, tc := range []struct {
		got digest.Digest
		ok  bool
	}{{a, false}, {b, true}, {c, true}, {digest.FromString("d"), false}} {
		if err := tagWinner(history, tc.got); (err == nil) != tc.ok {
			t.Errorf("tag at %s: err = %v, want ok=%v", tc.got, err, tc.ok)
		}
	}
}

// complete checks that every blob an image manifest names is in repo with
// the right size and digest. Blobs in good were verified already.
func complete(ctx context.Context, c *client, repo string, body []byte, good map[blobKey]int64) error {
	var m v1.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return err
	}
	if m.SchemaVersion != 2 || m.MediaType != v1.MediaTypeImageManifest {
		return fmt.Errorf("schemaVersion %d, mediaType %q", m.SchemaVersion, m.MediaType)
	}
	for _, desc := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if size, ok := good[blobKey{repo, desc.Digest}]; ok && size == desc.Size {
			continue
		}
		if err := c.getBlob(ctx, repo, desc.Digest, desc.Size); err != nil {
			return err
		}
	}
	return nil
}

// failures reports the first few verification failures and counts the
// rest, so one lost directory does not bury the log.
type failures struct {
	t *testing.T
	n int
}

const maxReported = 20

func (f *failures) errorf(format string, args ...any) {
	f.t.Helper()
	if f.n++; f.n <= maxReported {
		f.t.Errorf(format, args...)
	}
}

func (f *failures) flush() {
	if f.n > maxReported {
		f.t.Errorf("... and %d more verification failures", f.n-maxReported)
	}
}

// parallel runs fn(0..n-1) on that many workers and returns the errors.
func parallel(n, workers int, fn func(i int) error) []error {
	var (
		mu   sync.Mutex
		errs []error
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := fn(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return errs
}
