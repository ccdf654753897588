package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/storagetest"
	miniotest "github.com/atollhq/atoll/test/minio"
)

const testBucket = "atoll-test"

var roots atomic.Int64

// newStore returns a store on srv under a root directory of its own.
func newStore(t testing.TB, srv *miniotest.Server, edit func(*Config)) *Store {
	t.Helper()
	cfg := Config{
		RegionEndpoint: "http://" + srv.Endpoint(),
		Bucket:         testBucket,
		AccessKey:      srv.AccessKey,
		SecretKey:      srv.SecretKey,
		RootDirectory:  "t" + string(rune('a'+roots.Add(1)%26)) + randomHex()[:8],
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// leftovers lists the objects and multipart uploads of the store's uploads:
// those it can find, and those of the ids given (MinIO lists multipart
// uploads only by exact key).
func leftovers(t testing.TB, s *Store, ids ...string) []string {
	ctx := context.Background()
	all, err := s.uploadIDs(ctx)
	if err != nil {
		t.Errorf("list uploads: %v", err)
		return nil
	}
	for _, id := range ids {
		all[id] = true
	}
	var left []string
	for id := range all {
		uploads, err := s.multipartUploads(ctx, id)
		if err != nil {
			t.Errorf("list multipart uploads: %v", err)
		}
		for _, u := range uploads {
			left = append(left, "multipart upload of "+u.Key)
		}
	}
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: s.keys.uploads(), Recursive: true}) {
		if obj.Err != nil {
			t.Errorf("list uploads: %v", obj.Err)
			return nil
		}
		left = append(left, obj.Key)
	}
	sort.Strings(left)
	return left
}

// recorder remembers the upload ids a store was asked for.
type recorder struct {
	*Store
	mu  sync.Mutex
	ids []string
}

func (r *recorder) Writer(ctx context.Context, id string, state []byte) (storage.BlobWriter, error) {
	r.mu.Lock()
	r.ids = append(r.ids, id)
	r.mu.Unlock()
	return r.Store.Writer(ctx, id, state)
}

func TestSuite(t *testing.T) {
	srv := miniotest.Start(t)
	suite(t, func(t *testing.T) *Store {
		// 5 MiB parts: the suite's 3 MiB blob stays small, resumed uploads
		// cross part boundaries.
		return newStore(t, srv, func(c *Config) { c.PartSize = minPartSize })
	})
}

// suite runs the shared suite on stores from open.
func suite(t *testing.T, open func(*testing.T) *Store) {
	storagetest.BlobStore(t, func(t *testing.T) storagetest.Backend {
		r := &recorder{Store: open(t)}
		return storagetest.Backend{Store: r, Leftovers: func() []string {
			r.mu.Lock()
			defer r.mu.Unlock()
			return leftovers(t, r.Store, r.ids...)
		}}
	})
}

// pattern is a reader of n pseudo-random bytes that holds 1 MiB.
type pattern struct {
	block []byte
	off   int64
	n     int64
}

func newPattern(n int64) *pattern {
	p := &pattern{block: make([]byte, 1<<20), n: n}
	_, _ = rand.Read(p.block)
	return p
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	i := int(p.off % int64(len(p.block)))
	n := copy(b[:min(int64(len(b)), p.n-p.off)], p.block[i:])
	if i == 0 && n >= 8 { // vary the blocks
		b[0], b[1], b[2], b[3] = byte(p.off>>20), byte(p.off>>28), byte(p.off>>36), 0xa5
	}
	p.off += int64(n)
	return n, nil
}

// TestResumeAcrossRestarts uploads 40 MiB in uneven chunks; after each, it
// records the state, writes bytes a crash loses, and drops the writer
// without closing it, as a killed process would; a new writer resumes.
func TestResumeAcrossRestarts(t *testing.T) {
	srv := miniotest.Start(t)
	resumeAcrossRestarts(t, newStore(t, srv, nil))
}

func resumeAcrossRestarts(t *testing.T, s *Store) {
	ctx := context.Background()
	data, _ := io.ReadAll(newPattern(40 << 20))
	chunks := []int{1, 3<<20 + 7, 11<<20 + 1, 5 << 20, 17<<20 - 3, 2 << 20}
	var state []byte
	off := 0
	for i, n := range append(chunks, len(data)-sum(chunks)) {
		w, err := s.Writer(ctx, "big", state)
		if err != nil {
			t.Fatalf("Writer #%d: %v", i, err)
		}
		if w.Size() != int64(off) {
			t.Fatalf("resumed at %d, want %d", w.Size(), off)
		}
		if _, err := w.Write(data[off : off+n]); err != nil {
			t.Fatal(err)
		}
		off += n
		if off == len(data) {
			if err := w.Commit(ctx, digest.FromBytes(data)); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			break
		}
		if state, err = w.State(); err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(bytes.Repeat([]byte("lost"), 2<<20)) // after the state: a crash drops it
	}
	got := readBlob(t, s, digest.FromBytes(data))
	if digest.FromBytes(got) != digest.FromBytes(data) {
		t.Fatalf("read back %d bytes with another digest", len(got))
	}
	if left := leftovers(t, s); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

func sum(ns []int) (total int) {
	for _, n := range ns {
		total += n
	}
	return total
}

func readBlob(t *testing.T, s *Store, d digest.Digest) []byte {
	t.Helper()
	b, err := s.Open(context.Background(), d)
	if err != nil {
		t.Fatalf("Open %s: %v", d, err)
	}
	defer b.Close()
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatalf("read %s: %v", d, err)
	}
	return got
}

// TestMemoryBounded streams 200 MiB through one writer, watches the live
// heap, and reads the blob back.
func TestMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 200 MiB: skipped in -short mode")
	}
	srv := miniotest.Start(t)
	s := newStore(t, srv, nil)
	ctx := context.Background()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse

	w, err := s.Writer(ctx, "huge", nil)
	if err != nil {
		t.Fatal(err)
	}
	src, h := newPattern(200<<20), sha256.New()
	buf := make([]byte, 256<<10)
	for i := 0; ; i++ {
		n, err := src.Read(buf)
		if err == io.EOF {
			break
		}
		h.Write(buf[:n])
		if _, err := w.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		if i%16 == 0 { // the live heap: garbage (more of it under -race, whose pools drop buffers) is not held
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	d := digest.NewDigest(digest.SHA256, h)
	if err := w.Commit(ctx, d); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	growth := int64(peak) - int64(base)
	// Parts sent maxFlights at a time landed in order: the bucket holds
	// the bytes the hash saw.
	b, err := s.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	v := digest.SHA256.Digester()
	if _, err := io.Copy(v.Hash(), b); err != nil {
		t.Fatal(err)
	}
	if v.Digest() != d {
		t.Errorf("the stored blob reads back as %s, want %s", v.Digest(), d)
	}
	t.Logf("heap in use grew by %.1f MiB streaming 200 MiB (part size %d MiB)", float64(growth)/(1<<20), s.cfg.PartSize>>20)
	// The part filling and those being sent, and the hash's buffers.
	if limit := (maxFlights+1)*s.cfg.PartSize + 4<<20; growth > limit {
		t.Errorf("heap grew by %d bytes, want < %d (%d parts)", growth, limit, maxFlights+1)
	}
}

// TestRangeRead reads small ranges of a multipart blob, directly and through
// http.ServeContent, and checks that they fetch a bounded window.
func TestRangeRead(t *testing.T) {
	srv := miniotest.Start(t)
	s := newStore(t, srv, nil)
	ctx := context.Background()
	data, _ := io.ReadAll(newPattern(20<<20 + 333))
	d := digest.FromBytes(data)
	put(t, s, d, data)

	b, err := s.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, off := range []int64{0, 17, 5<<20 + 1, int64(len(data)) - 100} {
		if _, err := b.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 100)
		if _, err := io.ReadFull(b, got); err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if !bytes.Equal(got, data[off:off+100]) {
			t.Fatalf("bytes at %d differ", off)
		}
		if bb := b.(*blob); off > 0 && bb.bodyEnd-off > firstWindow {
			t.Errorf("read at %d fetched up to %d, more than a window", off, bb.bodyEnd)
		}
	}

	h := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := s.Open(r.Context(), d)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer b.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", b.ModTime(), b)
	}))
	defer h.Close()
	req, _ := http.NewRequest(http.MethodGet, h.URL, nil)
	req.Header.Set("Range", "bytes=12345678-12345777")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, data[12345678:12345778]) {
		t.Fatalf("ServeContent range: %s, %d bytes", resp.Status, len(got))
	}
}

func put(t *testing.T, s *Store, d digest.Digest, data []byte) {
	t.Helper()
	w, err := s.Writer(context.Background(), "put-"+d.Encoded()[:12], nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(context.Background(), d); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// TestOutage stops MinIO mid-run: every call fails fast with ErrUnavailable;
// after a restart the blobs are intact and an interrupted upload resumes.
func TestOutage(t *testing.T) {
	srv := miniotest.Start(t)
	s := newStore(t, srv, nil)
	ctx := context.Background()
	data, _ := io.ReadAll(newPattern(7 << 20))
	d := digest.FromBytes(data)
	put(t, s, d, data)
	w, err := s.Writer(ctx, "interrupted", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(data[:3<<20])
	state, err := w.State()
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Close()

	srv.Stop()
	for name, call := range map[string]func(context.Context) error{
		"Stat":          func(ctx context.Context) error { _, err := s.Stat(ctx, d); return err },
		"Open":          func(ctx context.Context) error { _, err := s.Open(ctx, d); return err },
		"Delete":        func(ctx context.Context) error { return s.Delete(ctx, d) },
		"Check":         s.Check,
		"Writer resume": func(ctx context.Context) error { _, err := s.Writer(ctx, "interrupted", state); return err },
		"Writer State": func(ctx context.Context) error {
			w, err := s.Writer(ctx, "during-outage", nil)
			if err != nil {
				return err
			}
			defer w.Close()
			_, _ = w.Write(data)
			_, err = w.State()
			return err
		},
	} {
		start := time.Now()
		err := call(ctx)
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("%s during outage: %v, want ErrUnavailable", name, err)
		}
		took := time.Since(start)
		if took > 10*time.Second {
			t.Errorf("%s took %v to fail", name, took)
		}
		t.Logf("%s during outage failed in %v: %v", name, took.Round(time.Millisecond), err)
	}

	srv.Restart()
	if got := readBlob(t, s, d); digest.FromBytes(got) != d {
		t.Fatal("blob changed across the outage")
	}
	w, err = s.Writer(ctx, "interrupted", state)
	if err != nil {
		t.Fatalf("resume after outage: %v", err)
	}
	_, _ = w.Write(data[3<<20:])
	if err := w.Commit(ctx, d); err != nil {
		t.Fatalf("Commit after outage: %v", err)
	}
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check after outage: %v", err)
	}
}
