package api_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/storage"
)

// slowCommits is a blob store whose commits wait for release, like a
// commit that copies the blob to other members.
type slowCommits struct {
	storage.BlobStore
	started chan struct{} // a commit began
	release chan struct{} // closed: commits go on
}

func (s slowCommits) Writer(ctx context.Context, id string, state []byte) (storage.BlobWriter, error) {
	w, err := s.BlobStore.Writer(ctx, id, state)
	if err != nil {
		return nil, err
	}
	return slowWriter{BlobWriter: w, s: s}, nil
}

type slowWriter struct {
	storage.BlobWriter
	s slowCommits
}

func (w slowWriter) Commit(ctx context.Context, d digest.Digest) error {
	w.s.started <- struct{}{}
	select {
	case <-w.s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return w.BlobWriter.Commit(ctx, d)
}

// A client that gives up during its final PUT does not lose the upload:
// the commit completes, and the retried PUT (sent while the commit still
// runs) waits for it and gets the same 201. A retry naming another digest
// does not succeed.
func TestFinalPutSurvivesClientTimeout(t *testing.T) {
	fs, meta := openStores(t, t.TempDir())
	blobs := slowCommits{BlobStore: fs, started: make(chan struct{}, 4), release: make(chan struct{})}
	srv := serve(t, api.Config{}, api.Deps{Blobs: blobs, Meta: meta})

	data := bytes.Repeat([]byte("layer "), 1000)
	d := digest.FromBytes(data)
	resp, _ := do(t, "POST", srv.URL+"/v2/app/blobs/uploads/", nil)
	loc := srv.URL + resp.Header.Get("Location")
	if resp, body := do(t, "PATCH", loc, data); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH: %s %s", resp.Status, body)
	}

	// The first PUT: the client gives up once the commit is under way.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "PUT", loc+"?digest="+d.String(), http.NoBody)
	first := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = errors.New("answered " + resp.Status)
		}
		first <- err
	}()
	waitFor(t, blobs.started, "the first commit")
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("first PUT: %v, want the client's cancellation", err)
	}

	// The retry arrives while the commit still runs, and waits for it.
	type answer struct {
		resp *http.Response
		body []byte
	}
	retry := make(chan answer, 1)
	go func() {
		resp, body := do(t, "PUT", loc+"?digest="+d.String(), nil)
		retry <- answer{resp, body}
	}()
	select {
	case a := <-retry:
		t.Fatalf("retry answered %s before the commit ended: %s", a.resp.Status, a.body)
	case <-time.After(200 * time.Millisecond):
	}
	close(blobs.release)
	a := <-retry
	if a.resp.StatusCode != http.StatusCreated {
		t.Fatalf("retried PUT: %s %s", a.resp.Status, a.body)
	}
	if got := a.resp.Header.Get("Docker-Content-Digest"); got != d.String() {
		t.Errorf("retried PUT: Docker-Content-Digest %q, want %s", got, d)
	}
	if got, want := a.resp.Header.Get("Location"), "/v2/app/blobs/"+d.String(); got != want {
		t.Errorf("retried PUT: Location %q, want %q", got, want)
	}
	select {
	case <-blobs.started:
		t.Error("the retry committed the blob a second time")
	default:
	}

	other := digest.FromString("something else")
	if resp, body := do(t, "PUT", loc+"?digest="+other.String(), nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("PUT with another digest after the commit: %s %s, want 400", resp.Status, body)
	}
	if resp, body := do(t, "PUT", srv.URL+"/v2/other/blobs/uploads/"+resp.Header.Get("Docker-Upload-UUID")+"?digest="+d.String(), nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("PUT of the session through another repository: %s %s, want 404", resp.Status, body)
	}
	if got := mustGet(t, srv.URL+"/v2/app/blobs/"+d.String()); !bytes.Equal(got, data) {
		t.Errorf("blob: %d bytes, want %d", len(got), len(data))
	}
}

func waitFor(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}
