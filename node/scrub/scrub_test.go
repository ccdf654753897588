package scrub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/filesystem"
)

func newStore(t *testing.T) (*filesystem.Store, string) {
	t.Helper()
	dir := t.TempDir()
	return newStoreIn(t, dir), dir
}

func newStoreIn(t testing.TB, dir string) *filesystem.Store {
	t.Helper()
	s, err := filesystem.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// commit stores content as a blob of s.
func commit(ctx context.Context, s *filesystem.Store, content []byte) error {
	w, err := s.Writer(ctx, fmt.Sprintf("u-%x", digest.FromBytes(content).Encoded()[:12]), nil)
	if err != nil {
		return err
	}
	if _, err := w.Write(content); err != nil {
		return err
	}
	return w.Commit(ctx, digest.FromBytes(content))
}

func blobFile(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", string(d.Algorithm()), d.Encoded()[:2], d.Encoded())
}

func content(i, size int) []byte {
	unit := fmt.Sprintf("blob %d;", i)
	return bytes.Repeat([]byte(unit), size/len(unit)+1)[:size]
}

// A rotten copy is moved aside and replaced by a good one; a copy cut
// short with no good copy anywhere is reported lost, with the repositories
// that link it; one whose copy failed for now is neither; good copies are
// left alone.
func TestScrubQuarantinesAndRepairs(t *testing.T) {
	ctx := context.Background()
	s, dir := newStore(t)
	var blobs [][]byte
	for i := range 4 {
		b := content(i, 100_000+i)
		blobs = append(blobs, b)
		if err := commit(ctx, s, b); err != nil {
			t.Fatal(err)
		}
	}
	rotten, cut := digest.FromBytes(blobs[1]), digest.FromBytes(blobs[2])
	bad := bytes.Clone(blobs[1])
	bad[5000] ^= 1
	if err := os.WriteFile(blobFile(dir, rotten), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(blobFile(dir, cut), 4096); err != nil {
		t.Fatal(err)
	}
	unreached := digest.FromBytes(blobs[3])
	bad3 := bytes.Clone(blobs[3])
	bad3[0] ^= 1
	if err := os.WriteFile(blobFile(dir, unreached), bad3, 0o644); err != nil {
		t.Fatal(err)
	}
	var repairs []digest.Digest
	var last Progress
	rep := Run(ctx, Deps{
		Self:  "n1",
		Blobs: s,
		Repair: func(ctx context.Context, d digest.Digest) (string, error) {
			repairs = append(repairs, d)
			switch d {
			case rotten:
				return "n2", commit(ctx, s, blobs[1])
			case cut:
				return "", fmt.Errorf("%w: n2: holds no copy", ErrNoGoodCopy)
			}
			return "", errors.New("n2: connection refused")
		},
		Repos: func(d digest.Digest) []string { return []string{"team/app", "team/" + d.Encoded()[:4]} },
	}, Options{Progress: func(p Progress) { last = p }})

	if rep.Error != "" || rep.Member != "n1" || rep.Checked != 4 || rep.Skipped != 0 || len(rep.Bad) != 3 || rep.Lost() != 1 {
		t.Fatalf("report %+v: want 4 checked, 3 bad, 1 lost", rep)
	}
	if len(repairs) != 3 {
		t.Fatalf("repairs asked for %v, want every bad blob", repairs)
	}
	for _, b := range rep.Bad {
		if b.Quarantined == "" || !strings.HasPrefix(b.Quarantined, filepath.Join(dir, "quarantine")) {
			t.Errorf("%s: quarantined in %q, want under quarantine/", b.Digest, b.Quarantined)
		}
		switch b.Digest {
		case rotten:
			if !b.Repaired || b.From != "n2" || b.Lost || b.Error != "" || len(b.Repositories) != 0 || !strings.Contains(b.Problem, "100001 bytes hash to sha256:") {
				t.Errorf("rotten blob: %+v; want repaired, its bytes' digest named", b)
			}
		case cut:
			if b.Repaired || !b.Lost || !strings.Contains(b.Error, "holds no copy") || len(b.Repositories) != 2 || !strings.Contains(b.Problem, "4096 bytes") {
				t.Errorf("cut blob: %+v; want lost, with why and the repositories", b)
			}
		case unreached:
			if b.Repaired || b.Lost || !strings.Contains(b.Error, "connection refused") || len(b.Repositories) != 2 {
				t.Errorf("blob whose copy failed: %+v; want neither repaired nor lost, with why", b)
			}
		default:
			t.Errorf("good blob %s reported bad: %+v", b.Digest, b)
		}
	}
	for i, want := range blobs {
		d := digest.FromBytes(want)
		b, err := s.Open(ctx, d)
		if i >= 2 {
			if !errors.Is(err, storage.ErrBlobUnknown) {
				t.Errorf("the lost blob: Open %v, want ErrBlobUnknown so that a push stores it again", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(b)
		b.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("blob %d after the scrub: %d bytes, %v; want its content", i, len(got), err)
		}
	}
	if last.Checked != 4 || last.Blobs != 4 || last.Bad != 3 || last.TotalBytes != 400_006 || last.Bytes != rep.Bytes || rep.Bytes != 100_000+100_001+4096+100_003 {
		t.Errorf("last progress %+v; want 4 of 4 blobs, 3 bad, every byte read, of the 400,006 the store counted", last)
	}
	// A second scrub finds nothing: the repaired copy is good, the
	// others are gone.
	if again := Run(ctx, Deps{Self: "n1", Blobs: s}, Options{}); again.Checked != 2 || len(again.Bad) != 0 || again.Error != "" {
		t.Fatalf("second scrub: %+v; want 2 good blobs", again)
	}
}

// failing wraps a store: reading one blob fails with EIO partway, another
// is collected between the walk and its read. It cannot quarantine.
type failing struct {
	store     *filesystem.Store
	eio, gone digest.Digest
}

func (f failing) Walk(ctx context.Context, fn func(digest.Digest, int64) error) error {
	return f.store.Walk(ctx, fn)
}

func (f failing) Open(ctx context.Context, d digest.Digest) (storage.Blob, error) {
	if d == f.gone {
		return nil, fmt.Errorf("%s: %w", d, storage.ErrBlobUnknown)
	}
	b, err := f.store.Open(ctx, d)
	if err != nil || d != f.eio {
		return b, err
	}
	return eioBlob{Blob: b, left: 10_000}, nil
}

type eioBlob struct {
	storage.Blob
	left int
}

func (b eioBlob) Read(p []byte) (int, error) {
	n, _ := b.Blob.Read(p[:min(len(p), b.left)])
	return n, &os.PathError{Op: "read", Path: "blob", Err: syscall.EIO}
}

// A copy that cannot be read is bad too; a store that cannot move it aside
// leaves it and says so; a blob gone before its read is skipped.
func TestScrubReadErrorWithoutQuarantine(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	var ds []digest.Digest
	for i := range 3 {
		b := content(i, 50_000)
		ds = append(ds, digest.FromBytes(b))
		if err := commit(ctx, s, b); err != nil {
			t.Fatal(err)
		}
	}
	repaired := false
	rep := Run(ctx, Deps{Self: "n1", Blobs: failing{store: s, eio: ds[0], gone: ds[1]},
		Repair: func(context.Context, digest.Digest) (string, error) { repaired = true; return "n2", nil }}, Options{})
	if rep.Error != "" || rep.Checked != 2 || rep.Skipped != 1 || len(rep.Bad) != 1 || repaired {
		t.Fatalf("report %+v (repair asked: %v); want 2 checked, 1 skipped, 1 bad, no repair", rep, repaired)
	}
	b := rep.Bad[0]
	if b.Digest != ds[0] || !strings.Contains(b.Problem, "input/output error") || b.Quarantined != "" || !b.Lost || !strings.Contains(b.Error, "cannot move") {
		t.Fatalf("bad copy %+v; want the read error, left in place", b)
	}
	if _, err := s.Stat(ctx, ds[0]); err != nil {
		t.Fatalf("the unreadable copy was removed by a store without quarantine: %v", err)
	}
}

// The rate bounds how fast a scrub reads; a scrub cut short says so.
func TestScrubRateAndCancel(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	for i := range 2 {
		if err := commit(ctx, s, content(i, 1<<20)); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	rep := Run(ctx, Deps{Self: "n1", Blobs: s}, Options{Rate: 8 << 20})
	if took := time.Since(start); rep.Error != "" || rep.Checked != 2 || took < 240*time.Millisecond {
		t.Fatalf("2 MiB at 8 MiB/s: %+v in %v; want both read in no less than 250 ms", rep, took)
	}
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	rep = Run(cctx, Deps{Self: "n1", Blobs: s}, Options{Rate: 1 << 20})
	if !strings.Contains(rep.Error, "deadline exceeded") || rep.Checked != 0 {
		t.Fatalf("scrub past its deadline: %+v; want it cut short, saying so", rep)
	}
}

// collecting is a store whose collection deletes each blob just after
// the scrub opened it.
type collecting struct{ *filesystem.Store }

func (c collecting) Open(ctx context.Context, d digest.Digest) (storage.Blob, error) {
	b, err := c.Store.Open(ctx, d)
	if err == nil {
		err = c.Store.Delete(ctx, d)
	}
	return b, err
}

// A bad copy deleted while it was read is gone, not lost: nothing to
// report, nothing to repair.
func TestScrubBadCopyCollectedMeanwhile(t *testing.T) {
	ctx := context.Background()
	s, dir := newStore(t)
	good := content(7, 20_000)
	if err := commit(ctx, s, good); err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(good)
	if err := os.WriteFile(blobFile(dir, d), content(8, 20_000), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := Run(ctx, Deps{Self: "n1", Blobs: collecting{s}, Repair: func(context.Context, digest.Digest) (string, error) {
		t.Error("repair asked for a blob collected meanwhile")
		return "", nil
	}}, Options{})
	if rep.Error != "" || rep.Checked != 1 || rep.Skipped != 1 || len(rep.Bad) != 0 {
		t.Fatalf("report %+v; want the bad copy skipped as gone", rep)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "quarantine")); len(entries) != 0 {
		t.Fatalf("quarantine holds %d files, want none", len(entries))
	}
}

// Progress comes within a blob too: a large blob at a low rate takes
// minutes, and a member that says nothing for long is given up.
func TestScrubProgressWithinABlob(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if err := commit(ctx, s, content(1, 4<<20)); err != nil {
		t.Fatal(err)
	}
	var seen []Progress
	rep := Run(ctx, Deps{Self: "n1", Blobs: s}, Options{Rate: 16 << 20, Every: 20 * time.Millisecond, Progress: func(p Progress) { seen = append(seen, p) }})
	if rep.Error != "" || rep.Checked != 1 {
		t.Fatalf("report %+v", rep)
	}
	mid := 0
	for _, p := range seen {
		if p.Checked == 0 && p.Bytes > 0 && p.Bytes < 4<<20 {
			mid++
		}
	}
	if mid < 2 || seen[len(seen)-1].Bytes != 4<<20 {
		t.Fatalf("progress %+v; want several reports within the blob (4 MiB at 16 MiB/s, every 20 ms), the last at its end", seen)
	}
}
