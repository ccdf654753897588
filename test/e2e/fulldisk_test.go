package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/storage/diskspace"
	"github.com/atollhq/atoll/storage/diskspace/diskspacetest"
)

// fullImage is an image the registry acknowledged while the disk filled.
type fullImage struct {
	tag      string
	manifest digest.Digest
	body     []byte
	layer    []byte
	config   []byte
}

// TestFullDisk runs a member on a 64 MiB tmpfs and fills it with pushes.
// Every write the disk cannot take answers 507 with the OCI error JSON,
// never a 4xx, and leaves no bytes behind; at 100 % full /readyz says why
// it is not ready, reads work, and manifest DELETE commits; a collection
// then frees the space, pushes work again, an upload that failed half-way
// resumes, and after a restart every image still held validates.
func TestFullDisk(t *testing.T) {
	mnt := diskspacetest.Tmpfs(t, 64<<20)
	debug := freeAddr(t)
	n := startNodeWith(t, filepath.Join(mnt, "data"), nodeOptions{args: []string{"--debug-addr", debug}})
	c := newClient(n.URL())
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const repo = "full/app"
	used := func() int64 {
		t.Helper()
		sp, err := diskspace.Stat(mnt)
		if err != nil {
			t.Fatal(err)
		}
		return int64(sp.Total - sp.Free)
	}
	// settled is used once the member's writes from earlier requests
	// (the metadata log, the fence's record of what clients were told)
	// have reached the disk: two readings 100 ms apart agree.
	settled := func() int64 {
		t.Helper()
		last := used()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			now := used()
			if now == last {
				return now
			}
			last = now
		}
		return last
	}
	// refused checks a write the full disk refused: 507 (or 503) with the
	// spec's error JSON, and the disk as it was before the write.
	refused := func(what string, r *response, err error, before int64) {
		t.Helper()
		if r == nil {
			t.Errorf("%s on a full disk: %v", what, err)
			return
		}
		var body struct {
			Errors []struct{ Code, Message string }
		}
		if r.status != http.StatusInsufficientStorage && r.status != http.StatusServiceUnavailable {
			t.Errorf("%s on a full disk: %d %s, want 507", what, r.status, r.body)
		} else if json.Unmarshal(r.body, &body) != nil || len(body.Errors) == 0 || body.Errors[0].Code == "" {
			t.Errorf("%s on a full disk: %d with body %q, want the OCI error JSON", what, r.status, r.body)
		}
		if after := settled(); after != before {
			t.Errorf("%s on a full disk: %d bytes in use before, %d after: the failed write left bytes", what, before, after)
		}
	}

	// Two sessions with one durable chunk each, to finish once space
	// returns: one with a PATCH, one with a PUT carrying the last chunk.
	session, last := fullRandom(t, 2<<20), fullRandom(t, 2<<20)
	half := int64(len(session) / 2)
	var loc, lastLoc string
	for _, s := range []struct {
		loc  *string
		data []byte
	}{{&loc, session}, {&lastLoc, last}} {
		l, err := c.startUpload(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		if *s.loc, err = c.patchChunk(ctx, l, s.data[:half], 0); err != nil {
			t.Fatal(err)
		}
	}

	// Fill the disk with images of a 2 MiB layer; when one does not fit,
	// halve the layer until a 4 KiB one does not fit either.
	var images []fullImage
	refusals := 0
	for size := 2 << 20; size >= 4<<10; {
		img, what, r, before, err := pushFullImage(ctx, t, c, repo, fmt.Sprintf("v%d", len(images)), size, settled)
		if err == nil {
			images = append(images, img)
			continue
		}
		refused(what, r, err, before)
		refusals++
		if t.Failed() {
			t.FailNow()
		}
		size /= 2
	}
	sp, err := diskspace.Stat(mnt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("full: %d images acknowledged, %d writes refused, %d bytes free of %d", len(images), refusals, sp.Free, sp.Total)
	if sp.Free > 64<<10 {
		t.Fatalf("disk not full after the pushes: %d bytes free", sp.Free)
	}
	if len(images) < 4 {
		t.Fatalf("only %d images fit on the disk", len(images))
	}

	// The failed-chunk case: a chunk of the session is refused whole, and
	// the session keeps its durable chunk.
	before := settled()
	h := octetStream.Clone()
	h.Set("Content-Range", fmt.Sprintf("%d-%d", half, len(session)-1))
	r, err := c.do(ctx, "PATCH", loc, h, session[half:], http.StatusAccepted)
	refused("PATCH of a 1 MiB chunk", r, err, before)
	if got, err := c.uploadStatus(ctx, loc); err != nil || got != half {
		t.Errorf("session after the refused chunk holds %d bytes (%v), want %d", got, err, half)
	}
	before = settled()
	h.Set("Content-Range", fmt.Sprintf("%d-%d", half, len(last)-1))
	r, err = c.do(ctx, "PUT", withDigest(lastLoc, digest.FromBytes(last)), h, last[half:], http.StatusCreated)
	refused("PUT with a last chunk of 1 MiB", r, err, before)
	if got, err := c.uploadStatus(ctx, lastLoc); err != nil || got != half {
		t.Errorf("session after the refused PUT holds %d bytes (%v), want %d", got, err, half)
	}
	if got := fullUploadBytes(t, filepath.Join(mnt, "data")); got != 2*half {
		t.Errorf("upload files hold %d bytes on a full disk, want only the sessions' durable %d", got, 2*half)
	}
	// A new session and a new tag either fit in what metadata keeps in
	// reserve or are refused as a full disk; never a client error.
	if r, err := c.do(ctx, "POST", "/v2/"+repo+"/blobs/uploads/", nil, nil, http.StatusAccepted, http.StatusInsufficientStorage); err != nil {
		t.Errorf("POST of an upload session on a full disk: %v", err)
	} else if r.status == http.StatusAccepted {
		if _, err := c.do(ctx, "DELETE", r.header.Get("Location"), nil, nil, http.StatusNoContent); err != nil {
			t.Errorf("DELETE of an upload session on a full disk: %v", err)
		}
	}
	if _, err := c.do(ctx, "PUT", "/v2/"+repo+"/manifests/retag", http.Header{"Content-Type": {ociManifest}}, images[0].body,
		http.StatusCreated, http.StatusInsufficientStorage); err != nil {
		t.Errorf("PUT of a tag on a full disk: %v", err)
	}

	// Not ready, and saying why; the metric agrees.
	if r, err := c.do(ctx, "GET", "/readyz", nil, nil, http.StatusServiceUnavailable); err != nil {
		t.Errorf("/readyz on a full disk: %v", err)
	} else if !strings.Contains(string(r.body), "below the floor") {
		t.Errorf("/readyz on a full disk says %q, want the free-space floor", r.body)
	}
	if free, err := fullFreeMetric(ctx, c, "http://"+debug+"/metrics"); err != nil {
		t.Error(err)
	} else if free > 64<<10 {
		t.Errorf("atoll_storage_free_bytes = %d on a full disk", free)
	}

	// Reads work.
	for _, img := range images {
		checkFullImage(ctx, t, c, repo, img)
	}

	// Tag and manifest DELETE commit at 100 % full: the first half of the
	// images go, the tag of the first one first.
	if _, err := c.do(ctx, "DELETE", "/v2/"+repo+"/manifests/"+images[0].tag, nil, nil, http.StatusAccepted); err != nil {
		t.Fatalf("DELETE tag on a full disk: %v", err)
	}
	deleted, kept := images[:len(images)/2], images[len(images)/2:]
	var deletedBytes int64
	for _, img := range deleted {
		if _, err := c.do(ctx, "DELETE", "/v2/"+repo+"/manifests/"+img.manifest.String(), nil, nil, http.StatusAccepted); err != nil {
			t.Fatalf("DELETE manifest on a full disk: %v", err)
		}
		deletedBytes += int64(len(img.layer) + len(img.config))
	}

	// A collection frees their blobs.
	before = settled()
	reports := fullCollect(ctx, t, c)
	freed := before - used()
	t.Logf("gc: %+v; %d bytes in use before, %d freed; %d bytes of deleted images", reports, before, freed, deletedBytes)
	if freed < deletedBytes/2 {
		t.Fatalf("gc freed %d bytes of the %d the deleted images held", freed, deletedBytes)
	}
	if _, err := c.do(ctx, "GET", "/readyz", nil, nil, http.StatusOK); err != nil {
		t.Errorf("/readyz after gc: %v", err)
	}

	// Pushes work again, and the session that failed half-way resumes.
	img, _, _, _, err := pushFullImage(ctx, t, c, repo, "after", 2<<20, used)
	if err != nil {
		t.Fatalf("push after gc: %v", err)
	}
	kept = append(kept, img)
	if loc, err = c.patchChunk(ctx, loc, session[half:], half); err != nil {
		t.Fatalf("resume the session: %v", err)
	}
	sd := digest.FromBytes(session)
	if err := c.finishUpload(ctx, loc, sd, nil, 0); err != nil {
		t.Fatalf("finish the session: %v", err)
	}
	if err := c.getBlob(ctx, repo, sd, int64(len(session))); err != nil {
		t.Error(err)
	}
	ld := digest.FromBytes(last)
	if err := c.finishUpload(ctx, lastLoc, ld, last[half:], half); err != nil {
		t.Fatalf("finish the session refused at its PUT: %v", err)
	}
	if err := c.getBlob(ctx, repo, ld, int64(len(last))); err != nil {
		t.Error(err)
	}

	// After a restart, everything still held validates.
	n.Restart()
	c2 := newClient(n.URL())
	defer c2.close()
	for _, img := range kept {
		checkFullImage(ctx, t, c2, repo, img)
	}
	for _, b := range [][]byte{session, last} {
		if err := c2.getBlob(ctx, repo, digest.FromBytes(b), int64(len(b))); err != nil {
			t.Error(err)
		}
	}
	for _, img := range deleted {
		if _, err := c2.do(ctx, "GET", "/v2/"+repo+"/manifests/"+img.manifest.String(), http.Header{"Accept": {ociManifest}}, nil, http.StatusNotFound); err != nil {
			t.Errorf("deleted manifest after a restart: %v", err)
		}
	}
}

// pushFullImage pushes an image of one layer of size bytes tagged tag,
// reading the disk's use with used before each write. On
// failure it says which request failed and returns its response.
func pushFullImage(ctx context.Context, t *testing.T, c *client, repo, tag string, size int, used func() int64) (fullImage, string, *response, int64, error) {
	img := fullImage{tag: tag, layer: fullRandom(t, size)}
	var before int64 // the disk in use before the write that failed
	post := func(data []byte) (*response, error) {
		before = used()
		return c.do(ctx, "POST", "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(data).String(), octetStream, data, http.StatusCreated)
	}
	if r, err := post(img.layer); err != nil {
		return img, fmt.Sprintf("POST of a %d-byte blob", size), r, before, err
	}
	img.config, _ = json.Marshal(v1.Image{
		Platform: v1.Platform{Architecture: "amd64", OS: "linux"},
		RootFS:   v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(img.layer)}},
	})
	if r, err := post(img.config); err != nil {
		return img, "POST of a config blob", r, before, err
	}
	img.body, _ = json.Marshal(v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(img.config), Size: int64(len(img.config))},
		Layers:    []v1.Descriptor{{MediaType: v1.MediaTypeImageLayer, Digest: digest.FromBytes(img.layer), Size: int64(size)}},
	})
	img.manifest = digest.FromBytes(img.body)
	before = used()
	r, err := c.do(ctx, "PUT", "/v2/"+repo+"/manifests/"+tag, http.Header{"Content-Type": {ociManifest}}, img.body, http.StatusCreated)
	if err != nil {
		return img, "PUT of a manifest", r, before, err
	}
	return img, "", nil, 0, nil
}

// checkFullImage fetches an image by tag and each of its blobs, checking
// every digest.
func checkFullImage(ctx context.Context, t *testing.T, c *client, repo string, img fullImage) {
	t.Helper()
	body, d, err := c.getManifest(ctx, repo, img.tag)
	if err != nil {
		t.Errorf("image %s: %v", img.tag, err)
		return
	}
	if d != img.manifest || !bytes.Equal(body, img.body) {
		t.Errorf("image %s: manifest %s, want %s", img.tag, d, img.manifest)
	}
	for _, b := range [][]byte{img.layer, img.config} {
		if err := c.getBlob(ctx, repo, digest.FromBytes(b), int64(len(b))); err != nil {
			t.Errorf("image %s: %v", img.tag, err)
		}
	}
}

// fullCollect runs a collection with no grace period and returns its reports.
func fullCollect(ctx context.Context, t *testing.T, c *client) []map[string]any {
	t.Helper()
	r, err := c.do(ctx, "POST", "/_atoll/v1/gc?grace=0s", nil, nil, http.StatusOK)
	if err != nil {
		t.Fatalf("gc: %v", err)
	}
	var reports []map[string]any
	for dec := json.NewDecoder(bytes.NewReader(r.body)); dec.More(); {
		var rep map[string]any
		if err := dec.Decode(&rep); err != nil {
			t.Fatalf("gc report %q: %v", r.body, err)
		}
		if e, _ := rep["error"].(string); e != "" {
			t.Fatalf("gc on a full disk failed: %s", e)
		}
		reports = append(reports, rep)
	}
	return reports
}

// fullFreeMetric reads atoll_storage_free_bytes from a /metrics page.
func fullFreeMetric(ctx context.Context, c *client, url string) (int64, error) {
	f, err := metricValue(ctx, c, url, "atoll_storage_free_bytes")
	return int64(f), err
}

// errNoSeries: a /metrics page has no sample of the series asked for.
var errNoSeries = errors.New("no such series")

// metricValue reads the sample of series (a name with its labels, as the
// page writes them) from the /metrics page at url.
func metricValue(ctx context.Context, c *client, url, series string) (float64, error) {
	r, err := c.do(ctx, "GET", url, nil, nil, http.StatusOK)
	if err != nil {
		return 0, err
	}
	for sc := bufio.NewScanner(bytes.NewReader(r.body)); sc.Scan(); {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s in %s: %w", series, url, errNoSeries)
}

// fullUploadBytes is the size of every upload file under a data directory.
func fullUploadBytes(t *testing.T, data string) int64 {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(data, "uploads"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}

func fullRandom(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
